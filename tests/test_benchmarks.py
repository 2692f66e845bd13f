"""The benchmarks run: every script answers --help (none is broken at import), and those that can
finish in seconds with their smallest arguments run once. Their figures are not checked here (a
timed test is not a measurement); that they run to the end is."""

from __future__ import annotations

import contextlib
import io
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

BENCHMARKS = REPO / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py"))
# Each with the smallest arguments that still run it through (a few seconds each on 2 cores).
QUICK_RUNS = {
    # Two "installs" (this interpreter twice): the harness's whole-command rounds end to end.
    "harness.py": ["--env", f"a={sys.executable}", "--env", f"b={sys.executable}", "--batches", "1", "--puzzles", "2",
                   "--fixed-steps", "1", "--rounds", "1"],
}


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_benchmark_answers_help(script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """In this interpreter (torch and the rest are imported once for all of them), as `__main__`."""
    monkeypatch.setattr(sys, "argv", [str(BENCHMARKS / script), "--help"])
    monkeypatch.setattr(sys, "path", [str(BENCHMARKS), *sys.path])
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown), pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(BENCHMARKS / script), run_name="__main__")
    assert exit_.value.code in (0, None) and "usage:" in shown.getvalue(), shown.getvalue()


def test_the_shell_benchmark_answers_help() -> None:
    proc = subprocess.run(["bash", str(BENCHMARKS / "trained_sudoku.sh"), "--help"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0 and "official evaluation loop" in proc.stdout, proc.stderr


@pytest.mark.parametrize("script", sorted(QUICK_RUNS))
def test_the_quick_benchmarks_run_through(script: str, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(BENCHMARKS / script), *QUICK_RUNS[script]], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr
