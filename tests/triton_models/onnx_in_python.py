"""Test harness: an ONNX graph served by Triton's Python backend through ONNX Runtime.

The Triton binary in the nvidia-pytriton wheel has only the Python backend, so the repository from
`trm-edge export --format triton` is tested here with its init/step models (onnxruntime_onnx in
production) served by this file instead; the solver model, its BLS loop, the configs' tensors and
Triton itself are the real ones.
"""

import json
import os

import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def execute(self, requests):
        responses = []
        for request in requests:
            feed = {}
            for name in self.inputs:
                tensor = pb_utils.get_input_tensor_by_name(request, name)
                if tensor is not None:
                    feed[name] = tensor.as_numpy()
            wanted = set(request.requested_output_names())
            values = self.session.run(None, feed)
            tensors = [pb_utils.Tensor(n, v) for n, v in zip(self.outputs, values, strict=True) if n in wanted]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
