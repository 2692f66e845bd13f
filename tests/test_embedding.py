"""solve.onnx where trm-edge is not: a Node.js script with onnxruntime-node, and the static page
`trm-edge export --format web` writes, driven in headless Chromium (Debian's chromium through
playwright-core) as a person uses it. CI installs node, npm and chromium and must run these; a
machine without them skips them and says why."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from trm_edge.contract.held_out import load_puzzles
from trm_edge.export.web_site import serve_site
from trm_edge.runtime.solver import Solver
from trm_edge.shipped import shipped_heldout
from trm_edge.tasks import SudokuCodec

from conftest import REPO, chromium_path, npm_folder, run_cli_in_process

CODEC = SudokuCodec()


@pytest.fixture(scope="module")
def web_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped Sudoku model as a web page, validated (and its examples taken) on its held-out puzzles."""
    web = npm_folder(REPO / "examples" / "web")
    site = tmp_path_factory.mktemp("web") / "site"
    run_cli_in_process("export", "shipped:sudoku-small", "--format", "web", "-o", str(site), "--data",
                       str(shipped_heldout("sudoku")), "--no-calibrate", "--ort-web",
                       str(web / "node_modules" / "onnxruntime-web" / "dist"), check=True)
    return site


def _runtime(export_like: Path, texts: list[str]) -> list:  # type: ignore[type-arg]
    return Solver.load(export_like, backend="ort-cpu", precision="fp32").solve(texts)


def _drive(*args: str) -> dict:  # type: ignore[type-arg]
    proc = subprocess.run(["node", "drive.mjs", *args], cwd=REPO / "examples" / "web", capture_output=True, text=True,
                          timeout=300, env={**os.environ, "CHROMIUM": chromium_path()})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_node_example_solves_a_file_with_onnxruntime_node(web_site: Path, tmp_path: Path) -> None:
    node = npm_folder(REPO / "examples" / "node")
    texts = [CODEC.decode(p) for p in load_puzzles(shipped_heldout("sudoku"), 81).inputs[:24]]
    (tmp_path / "puzzles.txt").write_text("# held-out Sudokus\n" + "\n".join(texts) + "\n")
    out = subprocess.run(["node", "solve.mjs", str(web_site / "solve.onnx"), str(tmp_path / "puzzles.txt"), "--json"],
                         cwd=node, capture_output=True, text=True, timeout=120, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    expected = _runtime(web_site, texts)
    assert [r["puzzle"] for r in rows] == texts
    for row, result in zip(rows, expected, strict=True):
        assert (row["answer"], row["steps"], row["verified"]) == (result.text, result.steps, result.verified)


def test_the_page_solves_a_puzzle_in_a_real_browser(web_site: Path, tmp_path: Path) -> None:
    """Pick a puzzle, press Solve (solve.onnx on WASM), read the verified answer from the page."""
    model = json.loads((web_site / "model.json").read_text())
    expected = _runtime(web_site, model["examples"][:3])
    with serve_site(web_site) as url:
        shown = _drive("solve", f"{url}/index.html", str(tmp_path / "page.png"), "graph-wasm", "2")
        stepped = _drive("solve", f"{url}/index.html", str(tmp_path / "steps.png"), "loop-wasm", "1")
    assert shown["problems"] == [] and "HeadlessChrome" in shown["userAgent"]
    assert shown["state"] == "done" and shown["verified"] == "true" and shown["puzzle"] == model["examples"][2]
    assert (shown["answer"], int(shown["steps"])) == (expected[2].text, expected[2].steps)
    assert shown["text"].startswith(f"verified at step {expected[2].steps}")
    # Step by step (the WebGPU path, on WASM here): each step listed, the same answer.
    assert (stepped["answer"], int(stepped["steps"])) == (expected[1].text, expected[1].steps)
    assert stepped["steps_shown"] == expected[1].steps
    assert (tmp_path / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_page_answers_as_the_runtime_does_both_ways(web_site: Path) -> None:
    model = json.loads((web_site / "model.json").read_text())
    count = 6
    expected = _runtime(web_site, model["examples"][:count])
    with serve_site(web_site) as url:
        rows = _drive("compare", f"{url}/index.html", str(count))["rows"]
    assert len(rows) == count
    for row, result in zip(rows, expected, strict=True):
        for way in ("graph", "loop"):
            got = row[way]
            assert (got["answer"], got["steps"], got["verified"]) == (result.text, result.steps, result.verified), way
    # The page's own examples are puzzles the shipped model solves (fp32 solve.onnx in WASM): a comparison
    # of solved puzzles, not of give-ups.
    assert np.mean([r["graph"]["verified"] for r in rows]) > 0.5
