"""`trm-edge export --format triton`: the model repository for Triton containers. Its configs are
parsed with Triton's own protobuf schema, and the repository runs in a real Triton (the binary in
the nvidia-pytriton wheel), with the ONNX graphs served through the Python backend because that
binary has no onnxruntime backend (tests/triton_models/onnx_in_python.py)."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2
from tritonclient.utils import InferenceServerException

from trm_edge.runtime import Solver
from trm_edge.runtime.serving.server import ServeOptions, TritonProcess
from trm_edge.tasks import SudokuCodec

from conftest import REPO, TRAINED, free_ports, run_cli


def parse(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def repository(trained_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("triton") / "repo"
    run_cli("export", str(trained_checkpoint), "--format", "triton", "-o", str(repo), "--max-batch", "16",
            "--triton-instances", "2", "--queue-delay-us", "500")
    return repo


def test_repository_layout_and_configs_parse_with_tritons_schema(repository: Path, trained_export: Path) -> None:
    meta = json.loads((trained_export / "trm_edge.json").read_text())
    solver = parse(repository / "trm_solver" / "config.pbtxt")
    init = parse(repository / "trm_solver_init" / "config.pbtxt")
    step = parse(repository / "trm_solver_step" / "config.pbtxt")
    assert solver.backend == "python" and solver.max_batch_size == 16
    assert solver.dynamic_batching.max_queue_delay_microseconds == 500
    assert solver.instance_group[0].count == 2
    assert solver.parameters["backend"].string_value == "triton-bls"
    assert solver.parameters["step_model"].string_value == "trm_solver_step"
    assert {i.name for i in solver.input} == {"tokens", "puzzle_identifiers", "puzzle"}
    assert all(i.optional for i in solver.input)
    assert {o.name for o in solver.output} == {"answer", "answer_text", "steps", "halt_confidence", "verified"}
    for config, graph in ((init, "init"), (step, "step")):
        assert config.backend == "onnxruntime" and config.max_batch_size == 16
        assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
        spec = meta["graphs"][graph]
        for tensor, io in [*zip(config.input, spec["inputs"], strict=True),
                           *zip(config.output, spec["outputs"], strict=True)]:
            assert tensor.name == io["name"]
            expected_dims = io["shape"][1:] or [1]  # one value per row is dims [1] reshaped to []
            assert list(tensor.dims) == expected_dims
            assert bool(tensor.HasField("reshape")) == (len(io["shape"]) == 1)
        assert (repository / f"trm_solver_{graph}" / "1" / "model.onnx").is_file()
    assert "from trm_edge.runtime.serving.python_model import TritonPythonModel" in (
        repository / "trm_solver" / "1" / "model.py"
    ).read_text()
    assert json.loads((repository / "trm_solver" / "1" / "trm_edge.json").read_text())["halting"] == meta["halting"]
    readme = (repository / "README.md").read_text()
    assert "| 24.10 | 2.51 | 10.5.0 |" in readme and "tritonserver --model-repository" in readme


def test_tensorrt_plan_variant_and_bad_options(trained_export: Path, tmp_path: Path) -> None:
    repo = tmp_path / "trt"
    run_cli("export", str(trained_export), "--format", "triton", "-o", str(repo), "--triton-step", "tensorrt")
    step = parse(repo / "trm_solver_step" / "config.pbtxt")
    assert step.platform == "tensorrt_plan" and step.max_batch_size == 256
    assert (repo / "step.onnx").is_file() and not (repo / "trm_solver_step" / "1" / "model.onnx").exists()
    readme = (repo / "README.md").read_text()
    assert "trtexec --onnx=/models/step.onnx" in readme and "--maxShapes=x_emb:256x81x" in readme
    for args, words in [
        ((), "not empty"),  # the same folder again
        (("--triton-step", "tensorrt", "--triton-device", "cpu"), "runs on a GPU"),
        (("--triton-step", "openvino"), "not one of onnxruntime, tensorrt"),
        (("--triton-instances", "0"), "instances must be at least 1"),
    ]:
        target = repo if not args else tmp_path / f"r{len(args)}{args[-1]}"
        proc = run_cli("export", str(trained_export), "--format", "triton", "-o", str(target), *args, check=False)
        assert proc.returncode != 0 and words in proc.stdout + proc.stderr, (args, proc.stdout + proc.stderr)
        assert "Traceback" not in proc.stderr
    proc = run_cli("export", str(trained_export), "--format", "triton", check=False)
    assert proc.returncode != 0 and "needs -o REPO" in proc.stdout + proc.stderr


def test_repository_runs_in_triton_and_matches_the_runtime(repository: Path, trained_export: Path,
                                                           tmp_path: Path) -> None:
    # The graph models on the Python backend (no onnxruntime backend in the wheel's Triton), on the CPU.
    repo = tmp_path / "repo"
    shutil.copytree(repository, repo)
    for name in ("trm_solver_init", "trm_solver_step"):
        config = repo / name / "config.pbtxt"
        config.write_text(config.read_text().replace('backend: "onnxruntime"', 'backend: "python"')
                          .replace("KIND_GPU", "KIND_CPU"))
        shutil.copyfile(REPO / "tests" / "triton_models" / "onnx_in_python.py", repo / name / "1" / "model.py")
    http, grpc, metrics = free_ports(3)
    options = ServeOptions(host="127.0.0.1", http_port=http, grpc_port=grpc, metrics_port=metrics,
                           log_file=tmp_path / "triton.log")
    server = TritonProcess(repo, options, ["trm_solver"], tmp_path)
    server.start()
    try:
        puzzles = (np.load(TRAINED / "test_300.npz")["puzzles"][:24] + 1).astype(np.int32)
        reference = Solver.load(trained_export, backend="ort-cpu", max_batch=1).solve(list(puzzles))
        codec = SudokuCodec()

        def call(i: int) -> tuple[int, np.ndarray, np.ndarray]:
            rows = puzzles[i : i + 3]
            if i % 2:  # text over gRPC
                client = grpcclient.InferenceServerClient(server.grpc_url)
                tensor = grpcclient.InferInput("puzzle", [3, 1], "BYTES")
                tensor.set_data_from_numpy(np.array([[codec.decode(r).encode()] for r in rows], dtype=np.object_))
            else:  # tokens over HTTP
                client = httpclient.InferenceServerClient(server.http_url)
                tensor = httpclient.InferInput("tokens", [3, 81], "INT32")
                tensor.set_data_from_numpy(rows)
            try:
                result = client.infer("trm_solver", [tensor])
            finally:
                client.close()
            return i, result.as_numpy("answer"), result.as_numpy("steps")[:, 0]

        with ThreadPoolExecutor(8) as pool:
            for i, answers, steps in pool.map(call, range(0, 21, 3)):
                np.testing.assert_array_equal(answers, np.stack([r.answer for r in reference[i : i + 3]]))
                np.testing.assert_array_equal(steps, [r.steps for r in reference[i : i + 3]])
        client = httpclient.InferenceServerClient(server.http_url)
        bad = httpclient.InferInput("tokens", [1, 81], "INT32")
        bad.set_data_from_numpy(np.full((1, 81), 42, np.int32))
        with pytest.raises(InferenceServerException, match=r"must lie in \[0, 11\)"):
            client.infer("trm_solver", [bad])
        client.close()
    finally:
        server.stop()
