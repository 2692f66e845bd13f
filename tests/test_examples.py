"""The examples app developers copy: the smallest embedding (torch-free) and the HTTP service that
batches concurrent requests; and SolverFeed, the live source under the service."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from trm_edge.runtime import Solver, SolverFeed
from trm_edge.runtime.feed import FeedClosedError
from trm_edge.tasks import PuzzleError

from conftest import CPU_BACKENDS, REPO, TRAINED, free_ports


def sudoku_texts(n: int, start: int = 0) -> list[str]:
    puzzles = np.load(TRAINED / "test_300.npz")["puzzles"][start : start + n]
    return ["".join(str(d) if d else "." for d in p) for p in puzzles]


def test_solve_sudoku_example_runs_without_torch(trained_export: Path) -> None:
    puzzles = sudoku_texts(2)
    script = (
        "import runpy, sys\n"
        f"sys.argv = ['solve_sudoku.py', {str(trained_export)!r}, *{puzzles!r}]\n"
        "try:\n"
        f"    runpy.run_path({str(REPO / 'examples' / 'solve_sudoku.py')!r}, run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "assert 'torch' not in sys.modules and 'onnx' not in sys.modules, 'the runtime imported torch or onnx'\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    expected = Solver.load(trained_export, slots=2).solve(puzzles)
    for r in expected:
        assert f"puzzle {r.index + 1}: {r.steps} steps" in proc.stdout
        assert " ".join(r.text[:9]) in proc.stdout  # first row of the solved grid
    bad = subprocess.run([sys.executable, str(REPO / "examples" / "solve_sudoku.py"), str(trained_export), "12"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "a sudoku has 81 cells" in bad.stderr


def test_feed_batches_concurrent_callers_like_solve(trained_export: Path) -> None:
    puzzles = sudoku_texts(40)
    expected = Solver.load(trained_export, slots=8).solve(puzzles)
    feed = SolverFeed(Solver.load(trained_export, slots=8)).start()
    try:
        with ThreadPoolExecutor(12) as pool:
            got = list(pool.map(lambda p: feed.submit(p).result(timeout=60), puzzles))
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a.answer, b.answer)
            assert a.steps == b.steps
        time.sleep(0.2)  # an idle feed wakes up for the next puzzle
        assert feed.submit(puzzles[0]).result(timeout=30).text == expected[0].text
        with pytest.raises(PuzzleError, match="81 cells"):
            feed.submit("1234")
    finally:
        feed.close()
    with pytest.raises(FeedClosedError, match="closed"):
        feed.submit(puzzles[0])


def test_http_service_answers_concurrent_requests(trained_export: Path) -> None:
    httpx = pytest.importorskip("httpx", reason="the examples extra (fastapi, uvicorn, httpx) is not installed")
    port = free_ports(1)[0]
    server = subprocess.Popen(
        [sys.executable, str(REPO / "examples" / "http_service.py"), str(trained_export), "--port", str(port),
         "--slots", "8"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                health = httpx.get(f"{base}/health", timeout=2).json()
                break
            except httpx.HTTPError as err:
                if time.time() > deadline or server.poll() is not None:
                    log = server.stdout.read() if server.stdout else ""
                    raise AssertionError(f"the service did not start:\n{log}") from err
                time.sleep(0.3)
        # auto chose by measurement on this machine; the expected answers come from the same choice.
        backend, precision = health.pop("backend"), health.pop("precision")
        assert health == {"status": "ok", "slots": 8} and backend in CPU_BACKENDS, (backend, health)
        puzzles = sudoku_texts(24, start=40)
        expected = {r.index: r for r in Solver.load(trained_export, backend=backend, precision=precision,
                                                    slots=8).solve(puzzles)}
        barrier = threading.Barrier(len(puzzles))

        def ask(i: int) -> dict:  # type: ignore[type-arg]
            barrier.wait()  # all requests in flight together
            return httpx.post(f"{base}/solve", json={"puzzle": puzzles[i]}, timeout=60).json()

        with ThreadPoolExecutor(len(puzzles)) as pool:
            answers = list(pool.map(ask, range(len(puzzles))))
        for i, answer in enumerate(answers):
            assert answer["solution"] == expected[i].text and answer["steps"] == expected[i].steps
            assert answer["verified"] is expected[i].verified is not None
        bad = httpx.post(f"{base}/solve", json={"puzzle": "12x"}, timeout=10)
        assert bad.status_code == 422 and "81 cells" in bad.json()["detail"]
        assert httpx.post(f"{base}/solve", json={"grid": "1"}, timeout=10).status_code == 422
        # The service is still healthy after bad requests.
        again = httpx.post(f"{base}/solve", json={"puzzle": puzzles[0]}, timeout=30).json()
        assert again["solution"] == expected[0].text
    finally:
        server.terminate()
        server.wait(timeout=20)
