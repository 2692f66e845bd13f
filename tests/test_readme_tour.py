"""README's tour runs as written from a clone: every ```python snippet and every line of every ```bash
block under "## Tour", in order, after the first set-up command (tests/test_readme.py holds that).

The rule for what is not run is README's own: a bash line whose comment begins with `needs` (an
NVIDIA GPU, Triton, 4 GPUs, a phone runtime's extra) needs what a CPU clone lacks. Every other line
runs here, so a command that is slow on a CPU is made cheap in README itself (`--train 1000`,
`--set train.steps=20`, `--puzzles 64`), not skipped.

The commands run in a temporary folder that links the clone's folders the tour reads (the shipped
models under trm_edge/models, examples/), so that what they write (data/, runs/, sudoku_export/...)
never lands in the repository; `trm-edge` and `python` are this environment's, as after set-up.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO

NEEDS = re.compile(r"\s#\s*needs\s+\S")  # a comment that says what the line needs
READ = ("trm_edge", "examples")  # the clone's folders the tour reads (written into by no line)
PROGRAMS = ("trm-edge", "python", "torchrun")


def tour_steps() -> list[tuple[str, str]]:
    """(kind, code) in README's order: a python snippet whole, a bash block line by line."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Tour\n", 1)[1].split("\n## ", 1)[0]
    steps = []
    for kind, code in re.findall(r"```(bash|python)\n(.*?)\n```", section, flags=re.S):
        steps += [(kind, code)] if kind == "python" else [(kind, line) for line in code.splitlines() if line.strip()]
    return steps


def runs_here(kind: str, code: str) -> bool:
    return kind == "python" or not NEEDS.search(code)


def test_the_tour_names_only_what_a_clone_has() -> None:
    """Each bash line is one command of this project's programs, writing nowhere in the clone; the
    lines not run say what they need; most of the tour runs."""
    steps = tour_steps()
    for kind, code in steps:
        if kind == "bash":
            assert code.split()[0] in PROGRAMS, f"README's tour runs {code.split()[0]!r}: {code}"
            assert not re.search(r"(?:-o|--output)\s+(?:" + "|".join(READ) + r")\b", code), code
    skipped = [code for kind, code in steps if not runs_here(kind, code)]
    assert len(skipped) <= len(steps) // 3, skipped
    for name in ("sudoku-small.heldout.npz", "sudoku-hard-examples.txt"):  # the shipped files, used
        assert any(f"trm_edge/models/{name}" in code for _, code in steps if runs_here(_, code)), name


def test_the_tour_runs_from_a_clone(tmp_path: Path) -> None:
    for name in READ:
        (tmp_path / name).symlink_to(REPO / name, target_is_directory=True)
    bin_dir = Path(sys.executable).parent  # the environment set-up made: trm-edge and python in it
    if not (bin_dir / "trm-edge").is_file():
        pytest.fail(f"no trm-edge beside {sys.executable}: install the project (README's set-up) to run its tour")
    env = os.environ | {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    timings = []
    for kind, code in tour_steps():
        if not runs_here(kind, code):
            continue
        args = [sys.executable, "-c", code] if kind == "python" else ["bash", "-c", code]
        start = time.perf_counter()
        proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        timings.append(f"{time.perf_counter() - start:5.1f} s  {code.splitlines()[-1][:90]}")
        assert proc.returncode == 0, f"README's tour fails at\n{code}\n({proc.returncode}):\n{proc.stdout}{proc.stderr}"
    print("\n".join(timings))  # pytest -s shows what each line costs
