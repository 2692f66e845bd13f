"""`trm-edge serve` under hostile or careless clients: no request can kill the server, one bad
puzzle never fails its neighbours, clients that hang up free their slots, and a dead Triton is
never mistaken for a clean stop."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from trm_edge.runtime.serving.load_clients import free_port_base, hang_up, server_ready, start_serve

from conftest import TRAINED, run_cli

MODEL = "trm_solver"
GOOD = "4.165.8....7.9..43..37.49...28.41..9.7.836..2....2.358.3241..9..1.3..........5136"


def _post(port: int, doc: dict, timeout: float = 60) -> tuple[int, dict]:  # type: ignore[type-arg]
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/{MODEL}/infer", data=json.dumps(doc).encode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _text_request(puzzles: list[str]) -> dict:  # type: ignore[type-arg]
    return {"inputs": [{"name": "puzzle", "shape": [len(puzzles), 1], "datatype": "BYTES", "data": puzzles}]}


def _ready(port: int) -> bool:
    return server_ready(f"127.0.0.1:{port}")


@pytest.fixture(scope="module")
def fixed16(trained_export: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A server whose puzzles all run 16 steps (so abandoned work would be expensive)."""
    log = tmp_path_factory.mktemp("serve_fixed") / "serve.out"
    process, ports = start_serve(trained_export, log, "--halt", "fixed:16")
    yield process, ports, log
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, log.read_text()


def test_declared_shapes_cannot_crash_the_server(fixed16) -> None:  # type: ignore[no-untyped-def]
    process, (http, _, _), _ = fixed16
    hostile = [
        [1099511627776, 81], [2**62, 2**62], [1, 1099511627776], [-1, 81], [1, 81, 1099511627776], [], ["a", 81],
    ]
    for shape in hostile:
        status, body = _post(http, {"inputs": [{"name": "tokens", "shape": shape, "datatype": "INT32", "data": [1]}]})
        assert status == 400 and "error" in body, (shape, status, body)
    assert process.poll() is None and _ready(http)
    status, body = _post(http, _text_request([GOOD]))
    assert status == 200 and {o["name"] for o in body["outputs"]} >= {"answer", "verified"}


def test_a_malformed_puzzle_never_fails_the_good_ones_batched_with_it(fixed16) -> None:  # type: ignore[no-untyped-def]
    _, (http, _, _), _ = fixed16
    bad = GOOD[:-1] + "²"

    def call(i: int) -> tuple[int, dict]:  # type: ignore[type-arg]
        return _post(http, _text_request([bad if i % 4 == 3 else GOOD]))

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(call, range(24)))
    for i, (status, body) in enumerate(replies):
        if i % 4 == 3:
            assert status == 400 and "is '²'" in body["error"] and "/" not in body["error"], body
        else:
            assert status == 200, body


def test_clients_that_hang_up_free_their_slots(fixed16) -> None:  # type: ignore[no-untyped-def]
    """Ten clients post 64 blank puzzles each (16 steps apiece: ~10,000 puzzle-steps) and hang up
    after 50 ms; the next good request is answered at once, not after all that work."""
    _, (http, _, _), _ = fixed16
    body = json.dumps(_text_request(["." * 81] * 64)).encode()
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda _: hang_up("127.0.0.1", http, MODEL, body), range(10)))
    time.sleep(0.05)
    start = time.monotonic()
    status, _ = _post(http, _text_request([GOOD]), timeout=120)
    assert status == 200 and time.monotonic() - start < 15, time.monotonic() - start


def test_a_dead_triton_is_started_again(fixed16) -> None:  # type: ignore[no-untyped-def]
    process, (http, _, _), log = fixed16
    _kill_triton(process)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not ("serving again" in log.read_text() and _ready(http)):
        time.sleep(0.5)
    assert "starting it again" in log.read_text() and _ready(http) and process.poll() is None
    assert _post(http, _text_request([GOOD]))[0] == 200


def test_a_triton_dying_again_soon_makes_serve_exit_non_zero_with_the_reason(trained_export: Path,
                                                                             tmp_path: Path) -> None:
    """Started again once; dead again within a minute of that is a crash loop: serve exits non-zero,
    saying why and where Triton's log is kept."""
    log = tmp_path / "serve.out"
    process, (http, _, _) = start_serve(trained_export, log)
    _kill_triton(process)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not ("serving again" in log.read_text() and _ready(http)):
        time.sleep(0.5)
    assert "serving again" in log.read_text(), log.read_text()
    _kill_triton(process)
    assert process.wait(timeout=60) != 0
    shown = log.read_text()
    assert "again within 60 s of being started again" in shown and "its log: " in shown
    kept = Path(shown.split("its log: ")[1].split(")")[0])
    assert kept.is_file()
    shutil.rmtree(kept.parent)


def _kill_triton(serve: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        children = subprocess.run(["pgrep", "-P", str(serve.pid)], capture_output=True, text=True).stdout.split()
        triton = [pid for pid in children if b"tritonserver" in _cmdline(pid)]
        if triton or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert triton, "no tritonserver child found"
    for pid in triton:
        subprocess.run(["kill", "-9", pid], check=True)


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone meanwhile
        return b""


def test_bad_addresses_fail_at_once_and_leave_nothing_behind(trained_export: Path) -> None:
    import socket

    before = set(Path("/tmp").glob("trm-edge-serve-*"))
    base = free_port_base(3)
    busy = socket.socket()
    busy.bind(("127.0.0.1", base + 1))  # gRPC's
    busy.listen()
    try:
        cases = [
            (["--host", "256.1.1.1"], "not a valid IP address"),
            (["--host", "127.0.0.1", "--port", "70000"], "is not a port"),
            (["--host", "127.0.0.1", "--port", "65534"], "the metrics port 65536 is not a port"),
            (["--host", "127.0.0.1", "--port", str(base)], f"the gRPC port {base + 1} on 127.0.0.1 is in use"),
        ]
        for args, words in cases:
            start = time.monotonic()
            proc = run_cli("serve", str(trained_export), *args, check=False)
            assert proc.returncode == 2 and words in proc.stderr, (args, proc.stderr)
            assert time.monotonic() - start < 30 and "Traceback" not in proc.stderr
    finally:
        busy.close()
    assert set(Path("/tmp").glob("trm-edge-serve-*")) <= before


def test_grpc_clients_still_reach_triton_directly(fixed16) -> None:  # type: ignore[no-untyped-def]
    import tritonclient.grpc as grpcclient

    _, (_, grpc, _), _ = fixed16
    tokens = (np.load(TRAINED / "test_300.npz")["puzzles"][:2] + 1).astype(np.int32)
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc}")
    try:
        tensor = grpcclient.InferInput("tokens", list(tokens.shape), "INT32")
        tensor.set_data_from_numpy(tokens)
        result = client.infer(MODEL, [tensor])
        assert result.as_numpy("steps")[:, 0].tolist() == [16, 16]
    finally:
        client.close()
