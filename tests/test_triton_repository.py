"""`trm-edge export --format triton`: the model repository for Triton containers. Its configs are
parsed with Triton's own protobuf schema, and the repository runs in a real Triton (the binary in
the nvidia-pytriton wheel), with the ONNX graphs served through the Python backend because that
binary has no onnxruntime backend (tests/triton_models/onnx_in_python.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
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
from trm_edge.runtime.serving.hostile_requests import hostile_requests, post
from trm_edge.runtime.serving.limits import InputLimit, repository_limits
from trm_edge.runtime.serving.load_clients import free_port_base, free_ports, server_ready
from trm_edge.runtime.serving.server import ServeOptions, TritonProcess
from trm_edge.tasks import SudokuCodec

from conftest import TRAINED, cli_runner_for_many_cases, cpu_triton_copy, run_cli, run_cli_in_process


def parse(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def repository(trained_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("triton") / "repo"
    run_cli_in_process("export", str(trained_checkpoint), "--format", "triton", "-o", str(repo), "--max-batch", "16",
                       "--triton-instances", "2", "--queue-delay-us", "500", check=True)
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
    assert "trm-edge guard /models --upstream 127.0.0.1:8010" in readme and "--allow-http=false" in readme


def test_guard_limits_come_from_the_repository_configs(repository: Path, tmp_path: Path) -> None:
    limits = repository_limits(repository)
    assert sorted(limits) == ["trm_solver", "trm_solver_init", "trm_solver_step"]
    assert limits["trm_solver"].max_batch == 16
    assert limits["trm_solver"].inputs["tokens"] == InputLimit(81, 4)
    assert limits["trm_solver"].inputs["puzzle"].values_per_row == 1
    assert limits["trm_solver_step"].inputs["z_H"] == InputLimit(81 * 128, 4)
    assert limits["trm_solver_step"].inputs["reset"] == InputLimit(1, 1)
    for args, words in [
        ((str(tmp_path), "--upstream", "127.0.0.1:8000"), "holds no model"),
        ((str(repository), "--upstream", "http://127.0.0.1:8000/"), "as HOST:PORT"),
        ((str(repository), "--upstream", "127.0.0.1:8000", "--port", "70000"), "is not a port"),
    ]:
        proc = run_cli("guard", *args, check=False)
        assert proc.returncode != 0 and words in proc.stdout + proc.stderr, (args, proc.stdout + proc.stderr)
        assert "Traceback" not in proc.stderr


def test_tensorrt_plan_variant_and_bad_options(trained_export: Path, tmp_path: Path) -> None:
    repo = tmp_path / "trt"
    run_cli_in_process("export", str(trained_export), "--format", "triton", "-o", str(repo), "--triton-step",
                       "tensorrt", check=True)
    step = parse(repo / "trm_solver_step" / "config.pbtxt")
    assert step.platform == "tensorrt_plan" and step.max_batch_size == 256
    assert (repo / "step.onnx").is_file() and not (repo / "trm_solver_step" / "1" / "model.onnx").exists()
    readme = (repo / "README.md").read_text()
    assert "trtexec --onnx=/models/step.onnx" in readme and "--maxShapes=x_emb:256x81x" in readme
    run_case = cli_runner_for_many_cases()
    for args, words in [
        ((), "not empty"),  # the same folder again
        (("--triton-step", "tensorrt", "--triton-device", "cpu"), "runs on a GPU"),
        (("--triton-step", "openvino"), "not one of onnxruntime, tensorrt"),
        (("--triton-instances", "0"), "instances must be at least 1"),
    ]:
        target = repo if not args else tmp_path / f"r{len(args)}{args[-1]}"
        proc = run_case("export", str(trained_export), "--format", "triton", "-o", str(target), *args)
        assert proc.returncode != 0 and words in proc.stdout + proc.stderr, (args, proc.stdout + proc.stderr)
        assert "Traceback" not in proc.stderr
    proc = run_case("export", str(trained_export), "--format", "triton")
    assert proc.returncode != 0 and "needs -o REPO" in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def plain_triton(repository: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The exported repository in a plain Triton (no trm-edge in front), on the CPU."""
    work = tmp_path_factory.mktemp("plain_triton")
    repo = cpu_triton_copy(repository, work / "repo")
    options = ServeOptions(host="127.0.0.1", port=free_port_base(3), log_file=work / "triton.log")
    server = TritonProcess(repo, options, ["trm_solver"], work)
    server.start()
    yield server
    server.stop()


def test_repository_runs_in_triton_and_matches_the_runtime(plain_triton: TritonProcess, trained_export: Path) -> None:
    server = plain_triton
    puzzles = (np.load(TRAINED / "test_300.npz")["puzzles"][:24] + 1).astype(np.int32)
    reference = Solver.load(trained_export, backend="ort-cpu", slots=1).solve(list(puzzles))
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


# Each model of the repository, the input a hostile request names, its datatype and row shape.
REPOSITORY_INPUTS = [("trm_solver", "tokens", "INT32", [81]), ("trm_solver", "puzzle", "BYTES", [1]),
                     ("trm_solver_init", "tokens", "INT32", [81]), ("trm_solver_step", "z_H", "FP32", [81, 128])]


def test_trm_edge_guard_in_front_of_a_plain_triton_refuses_every_hostile_request(
    plain_triton: TritonProcess, repository: Path
) -> None:
    """`trm-edge guard REPO --upstream TRITON` (what the repository's README tells users to run):
    every hostile request is refused with a 400 that says why, Triton stays up, good requests pass.
    (The same requests sent to the plain Triton directly crash it: the retired triton_hostile.py, docs/results.md.)"""
    port = free_ports(1)[0]
    guard = subprocess.Popen([sys.executable, "-m", "trm_edge", "guard", str(repository), "--host", "127.0.0.1",
                              "--port", str(port), "--upstream", plain_triton.http_url],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while not server_ready(url):
            assert time.monotonic() < deadline and guard.poll() is None, "trm-edge guard did not start"
            time.sleep(0.2)
        for model, name, datatype, row in REPOSITORY_INPUTS:
            for request in hostile_requests(name, datatype, row):
                status, text = post(url, model, request)
                assert status == 400 and "error" in json.loads(text), (model, request.what, status, text)
        assert post(url, "other_model", hostile_requests("tokens", "INT32", [81])[0])[0] == 404
        assert server_ready(plain_triton.http_url)
        client = httpclient.InferenceServerClient(url)
        tensor = httpclient.InferInput("tokens", [1, 81], "INT32")
        tensor.set_data_from_numpy((np.load(TRAINED / "test_300.npz")["puzzles"][:1] + 1).astype(np.int32))
        assert client.infer("trm_solver", [tensor]).as_numpy("answer").shape == (1, 81)  # binary data passes
        client.close()
    finally:
        guard.send_signal(signal.SIGTERM)
        assert guard.wait(timeout=30) == 0, guard.stdout.read() if guard.stdout else ""


def test_plain_triton_refuses_hostile_binary_and_grpc_requests_itself(plain_triton: TritonProcess) -> None:
    """What the model configuration bounds without a guard: binary HTTP requests and gRPC requests
    (their bytes arrive before anything is allocated) are refused by a plain Triton, which stays up."""
    for model, name, datatype, row in REPOSITORY_INPUTS:
        for request in hostile_requests(name, datatype, row):
            if request.what.startswith("binary"):
                status, text = post(plain_triton.http_url, model, request)
                assert status == 400, (model, request.what, status, text)
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    # Raw gRPC messages: the client library would refuse these shapes before sending them.
    with grpc.insecure_channel(plain_triton.grpc_url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for shape in ([1 << 40, 81], [1, 1 << 40], [1 << 62, 1 << 62], [17, 81]):
            request = service_pb2.ModelInferRequest(model_name="trm_solver")
            tensor = request.inputs.add(name="tokens", datatype="INT32")
            tensor.shape.extend(shape)
            request.raw_input_contents.append(b"\0" * 4)
            with pytest.raises(grpc.RpcError) as refused:
                stub.ModelInfer(request, timeout=30)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (shape, refused.value)
    assert server_ready(plain_triton.http_url)
