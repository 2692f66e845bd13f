"""`trm-edge serve`: a real Triton Inference Server (from the nvidia-pytriton wheel) serving the
trained Sudoku fixture; clients are tritonclient over HTTP and gRPC, as users call it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from trm_edge.runtime import Solver
from trm_edge.runtime.serving.load_clients import hang_up, run_load, start_serve
from trm_edge.tasks import SudokuCodec

from conftest import TRAINED, run_cli, run_cli_in_process

MODEL = "trm_solver"


@dataclass
class Served:
    http: str
    grpc: str
    metrics: str
    process: subprocess.Popen[str]
    backend: str  # what auto chose for the server (its start-up line says)
    precision: str


def serving_choice(log: Path) -> tuple[str, str]:
    """(backend, precision) from serve's start-up line ('serving EXPORT as model M on BACKEND PRECISION')."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r" on (\S+) (fp32|bf16|fp16) \(", log.read_text())
        if found:
            return found.group(1), found.group(2)
        time.sleep(0.2)
    raise AssertionError(f"serve did not say what it runs on:\n{log.read_text()}")


@pytest.fixture(scope="module")
def served(trained_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("serve") / "serve.out"
    process, (http, grpc, metrics) = start_serve(trained_export, log, "--slots", "32")
    yield Served(f"127.0.0.1:{http}", f"127.0.0.1:{grpc}", f"http://127.0.0.1:{metrics}/metrics", process,
                 *serving_choice(log))
    process.send_signal(signal.SIGTERM)  # as docker stop / Kubernetes do
    assert process.wait(timeout=60) == 0, log.read_text()
    assert "stopped" in log.read_text()


@pytest.fixture(scope="module")
def puzzles() -> np.ndarray:
    return (np.load(TRAINED / "test_300.npz")["puzzles"][:96] + 1).astype(np.int32)


@pytest.fixture(scope="module")
def expected(trained_export: Path, puzzles: np.ndarray, served: Served) -> tuple[np.ndarray, np.ndarray]:
    """The runtime's own answers and steps on the server's backend and precision, each puzzle alone
    in the batch (like with like: another backend or precision rounds differently)."""
    solver = Solver.load(trained_export, backend=served.backend, precision=served.precision, slots=1)
    results = solver.solve(list(puzzles))
    return np.stack([r.answer for r in results]), np.array([r.steps for r in results])


def infer_tokens(module, url: str, rows: np.ndarray, ids: np.ndarray | None = None):  # type: ignore[no-untyped-def]
    client = module.InferenceServerClient(url)
    try:
        tokens = module.InferInput("tokens", list(rows.shape), "INT32")
        tokens.set_data_from_numpy(rows.astype(np.int32))
        inputs = [tokens]
        if ids is not None:
            ident = module.InferInput("puzzle_identifiers", [len(ids), 1], "INT32")
            ident.set_data_from_numpy(ids.reshape(-1, 1).astype(np.int32))
            inputs.append(ident)
        return client.infer(MODEL, inputs)
    finally:
        client.close()


def infer_text(module, url: str, texts: list[str]):  # type: ignore[no-untyped-def]
    client = module.InferenceServerClient(url)
    try:
        tensor = module.InferInput("puzzle", [len(texts), 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[t.encode()] for t in texts], dtype=np.object_))
        return client.infer(MODEL, [tensor])
    finally:
        client.close()


def test_concurrent_http_and_grpc_answers_match_the_runtime(served: Served, puzzles, expected) -> None:
    answers, steps = expected
    codec = SudokuCodec()
    # 24 clients at once: tokens over HTTP and gRPC (1-4 puzzles per request) and Sudoku text.
    jobs = []
    start = 0
    for j, rows in enumerate([1, 2, 3, 4] * 6):
        jobs.append((j % 3, list(range(start, start + rows))))
        start = (start + rows) % (len(puzzles) - 4)

    def call(job: tuple[int, list[int]]) -> tuple[list[int], np.ndarray, np.ndarray, list[str] | None]:
        kind, idx = job
        if kind == 0:
            r = infer_tokens(httpclient, served.http, puzzles[idx], ids=np.zeros(len(idx)))
        elif kind == 1:
            r = infer_tokens(grpcclient, served.grpc, puzzles[idx])
        else:
            r = infer_text(grpcclient, served.grpc, [codec.decode(puzzles[i]) for i in idx])
        text = [t.decode() for t in r.as_numpy("answer_text")[:, 0]]
        return idx, r.as_numpy("answer"), r.as_numpy("steps")[:, 0], text

    with ThreadPoolExecutor(24) as pool:
        for idx, got, got_steps, text in pool.map(call, jobs):
            np.testing.assert_array_equal(got, answers[idx])
            np.testing.assert_array_equal(got_steps, steps[idx])
            assert text == [codec.decode(a) for a in answers[idx]]


def test_outputs_carry_halting_confidence_verified_and_health_endpoints(served: Served, puzzles, expected) -> None:
    r = infer_tokens(httpclient, served.http, puzzles[:2])
    confidence = r.as_numpy("halt_confidence")
    assert confidence.shape == (2, 1) and confidence.dtype == np.float32 and ((confidence > 0) & (confidence < 1)).all()
    verified = r.as_numpy("verified")
    codec = SudokuCodec()
    assert verified.dtype == np.int8 and verified[:, 0].tolist() == [
        int(codec.is_solution(p, a)) for p, a in zip(puzzles[:2], expected[0][:2], strict=True)
    ]
    with urllib.request.urlopen(f"http://{served.http}/v2/health/ready", timeout=5) as resp:
        assert resp.status == 200
    config = json.loads(urllib.request.urlopen(f"http://{served.http}/v2/models/{MODEL}/config", timeout=5).read())
    assert config["max_batch_size"] == 32 and config["dynamic_batching"]["max_queue_delay_microseconds"] == 1000


MALFORMED = [
    # (what, how to build the inputs, words the error must contain)
    ("token outside the vocabulary", lambda m, p: [_tok(m, np.full((1, 81), 99))], "must lie in [0, 11)"),
    ("wrong puzzle length", lambda m, p: [_tok(m, np.ones((1, 80)))], "expected"),
    ("wrong dtype", lambda m, p: [_raw(m, "tokens", np.ones((1, 81), np.float32), "FP32")], "data-type"),
    # HTTP: the guard refuses it; gRPC: Triton does.
    ("unknown input", lambda m, p: [_raw(m, "grid", np.ones((1, 81), np.int32), "INT32")],
     ("'grid' is not an input of this model", "unexpected inference input 'grid'")),
    ("no puzzle", lambda m, p: [_raw(m, "puzzle_identifiers", np.zeros((1, 1), np.int32), "INT32")], "exactly one"),
    ("tokens and text", lambda m, p: [_tok(m, p[:1]), _text(m, ["1" * 81])], "exactly one"),
    ("bad Sudoku text", lambda m, p: [_text(m, ["12x" + "." * 78])], "cell 3 (row 1, column 3) is 'x'"),
    ("short Sudoku text", lambda m, p: [_text(m, ["123"])], "81"),
    ("puzzle id out of range", lambda m, p: [_tok(m, p[:1]), _ids(m, [5])], "5"),
    ("ids and puzzles disagree", lambda m, p: [_tok(m, p[:2]), _ids(m, [0])], "batch size"),
    ("not UTF-8", lambda m, p: [_raw(m, "puzzle", np.array([[b"\xff\xfe"]], dtype=np.object_), "BYTES")], "UTF-8"),
]


def _raw(m, name, value, dtype):  # type: ignore[no-untyped-def]
    t = m.InferInput(name, list(value.shape), dtype)
    t.set_data_from_numpy(value)
    return t


def _ids(m, ids):  # type: ignore[no-untyped-def]
    return _raw(m, "puzzle_identifiers", np.array(ids, dtype=np.int32).reshape(-1, 1), "INT32")


def _tok(m, rows):  # type: ignore[no-untyped-def]
    return _raw(m, "tokens", np.asarray(rows, dtype=np.int32), "INT32")


def _text(m, texts):  # type: ignore[no-untyped-def]
    return _raw(m, "puzzle", np.array([[t.encode()] for t in texts], dtype=np.object_), "BYTES")


def test_a_burst_of_malformed_requests_gets_errors_and_never_touches_the_others(
    served: Served, puzzles, expected
) -> None:
    answers, _ = expected

    def bad(case_and_protocol: tuple[int, object]) -> str:
        case, module = case_and_protocol
        _, build, _ = MALFORMED[case]
        client = module.InferenceServerClient(served.http if module is httpclient else served.grpc)  # type: ignore[attr-defined]
        try:
            client.infer(MODEL, build(module, puzzles))
        except InferenceServerException as exc:
            return str(exc)
        finally:
            client.close()
        return "ANSWERED"

    def good(i: int) -> np.ndarray:
        return infer_tokens(httpclient, served.http, puzzles[[i, i + 1]]).as_numpy("answer")

    cases = [(c, m) for c in range(len(MALFORMED)) for m in (httpclient, grpcclient)] * 3
    with ThreadPoolExecutor(16) as pool:
        good_futures = [pool.submit(good, i) for i in range(0, 40, 2)]
        messages = list(pool.map(bad, cases))
    for (case, module), message in zip(cases, messages, strict=True):
        what, _, words = MALFORMED[case]
        assert message != "ANSWERED", f"{what} over {module.__name__} was answered"
        assert any(w in message for w in ((words,) if isinstance(words, str) else words)), (what, module, message)
    for i, future in zip(range(0, 40, 2), good_futures, strict=True):
        np.testing.assert_array_equal(future.result(timeout=60), answers[[i, i + 1]])
    # And HTTP that is not even JSON.
    request = urllib.request.Request(f"http://{served.http}/v2/models/{MODEL}/infer", data=b"{not json", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code in (400, 500) and "JSON" in err.value.read().decode()  # Triton's parser says why
    assert infer_tokens(httpclient, served.http, puzzles[:1]).as_numpy("answer").shape == (1, 81)


def test_load_with_malformed_requests_and_hang_ups_loses_nothing(served: Served, puzzles, expected) -> None:
    answers, _ = expected
    before = _successes(served)
    report = run_load(served.http, MODEL, puzzles, answers, protocol="http", clients=6, seconds=4,
                      rows_per_request=2, malformed_every=5, disconnect_every_s=0.5)
    grpc_report = run_load(served.grpc, MODEL, puzzles, answers, protocol="grpc", clients=6, seconds=3,
                           malformed_every=7, disconnect_every_s=0.5, http_url=served.http)
    for r in (report, grpc_report):
        assert r.errors == 0, r.error_messages[:3]
        assert r.wrong_answers == 0
        assert r.requests_ok > 10 and r.malformed_sent > 0 and r.malformed_rejected == r.malformed_sent
        assert r.disconnects > 0
    # No request ran twice: the server's own count grew by at most what the clients sent (Triton counts
    # a Python-backend error response, our malformed-content rejections, as a success).
    time.sleep(1.0)  # the last hung-up requests finish
    grown = _successes(served) - before
    sent = [(r.requests_ok, r.malformed_sent, r.disconnects) for r in (report, grpc_report)]
    assert sum(ok for ok, _, _ in sent) <= grown <= sum(map(sum, sent))
    assert infer_tokens(httpclient, served.http, puzzles[:1]).as_numpy("answer").shape == (1, 81)


def test_a_client_that_hangs_up_mid_request_does_not_stall_the_server(served: Served, puzzles, expected) -> None:
    answers, _ = expected
    body = json.dumps({"inputs": [{"name": "tokens", "shape": [8, 81], "datatype": "INT32",
                                   "data": puzzles[:8].ravel().tolist()}]}).encode()
    host, port = served.http.split(":")
    for _ in range(5):
        hang_up(host, int(port), MODEL, body)
    t0 = time.perf_counter()
    np.testing.assert_array_equal(infer_tokens(grpcclient, served.grpc, puzzles[8:10]).as_numpy("answer"),
                                  answers[8:10])
    assert time.perf_counter() - t0 < 30


def _successes(served: Served) -> int:
    text = urllib.request.urlopen(served.metrics, timeout=5).read().decode()
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("nv_inference_request_success") and f'model="{MODEL}"' in line))


def test_prometheus_metrics_count_requests(served: Served, puzzles) -> None:
    before = _successes(served)
    infer_tokens(httpclient, served.http, puzzles[:3])
    assert _successes(served) == before + 1
    text = urllib.request.urlopen(served.metrics, timeout=5).read().decode()
    assert "nv_inference_request_failure" in text and "nv_inference_queue_duration_us" in text


def test_serve_errors_are_clear_and_start_nothing(tmp_path: Path, trained_export: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRM_EDGE_TRITON_LOG", str(tmp_path / "missing" / "triton.log"))
    proc = run_cli_in_process("serve", str(trained_export))  # Triton would open it: refused before it starts
    assert proc.returncode == 2 and proc.stderr.startswith("error: TRM_EDGE_TRITON_LOG: cannot write"), proc.stderr
    monkeypatch.delenv("TRM_EDGE_TRITON_LOG")
    proc = run_cli("serve", str(tmp_path), check=False)
    assert proc.returncode != 0 and "not a trm-edge export directory" in proc.stderr + proc.stdout
    proc = run_cli("serve", str(trained_export), "--instances", "0", check=False)
    assert proc.returncode != 0 and "instances must be at least 1" in proc.stderr + proc.stdout
    proc = run_cli("serve", str(trained_export), "--backend", "tensorrt", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
