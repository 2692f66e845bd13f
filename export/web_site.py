"""`trm-edge export --format web -o SITE`: a static page that solves Sudokus in the browser.

The site holds the export's graphs (solve.onnx, init.onnx, step.onnx), model.json (sizes, the
halting policy solve.onnx was built for, example puzzles), the page (export/web: index.html,
solve.js) and ONNX Runtime Web's files under ort/, copied from an onnxruntime-web `dist` folder
(`--ort-web DIR`; npm install onnxruntime-web puts it at node_modules/onnxruntime-web/dist).
Any static file server serves it; nothing runs on the server. `serve_site` serves one on the
loopback (the tests and benchmarks/embed_latency.py drive the page in a browser through it).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from trm_edge.atomic import atomic_folder
from trm_edge.contract.export_dir import read_metadata
from trm_edge.contract.halting_policy import HaltPolicy, parse_policy
from trm_edge.contract.metadata import ExportMetadata
from trm_edge.contract.validation_file import read_validation_puzzles
from trm_edge.errors import TrmEdgeError
from trm_edge.export.files import EXPORT_DIRECTORY, SOLVE_FILE, WEB_MODEL, WEB_ORT, WEB_PAGE
from trm_edge.tasks import get_codec

PAGE = Path(__file__).parent / "web"
# What the page imports from onnxruntime-web's dist: the bundle with the WASM and WebGPU providers
# and the WASM binaries it loads (threaded SIMD, with and without JSEP for WebGPU).
ORT_FILES = ("ort.all.min.mjs", "ort-wasm-simd-threaded.jsep.mjs", "ort-wasm-simd-threaded.jsep.wasm",
             "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")


def check_site_target(site: Path) -> None:
    if site.exists() and (not site.is_dir() or any(site.iterdir())):
        raise TrmEdgeError(f"-o {site} exists and is not an empty folder: give a new folder for the site")


def write_web_site(export_dir: Path, site: Path, ort_dist: Path | None, parameters: int) -> Path:
    """The site for a Sudoku export that has solve.onnx; returns the site folder."""
    meta = read_metadata(export_dir)
    if meta.task != "sudoku" or meta.model.seq_len != 81:
        raise TrmEdgeError(f"the web page solves 9x9 Sudokus; this model's task is {meta.task!r}: use --format onnx "
                           "--solve-graph and solve.onnx in your own page")
    if meta.solve is None:
        raise TrmEdgeError("the web format needs solve.onnx: export it with the solve graph")
    if ort_dist is not None:
        missing = [f for f in ORT_FILES if not (ort_dist / f).is_file()]
        if missing:
            raise TrmEdgeError(f"--ort-web {ort_dist} lacks {', '.join(missing)}: give onnxruntime-web's dist folder "
                               "(node_modules/onnxruntime-web/dist after npm install onnxruntime-web)")
    check_site_target(site)
    with atomic_folder(site) as staging:  # the site appears whole, or not at all
        _write_site(export_dir, staging, meta, ort_dist, parameters)
    return site


def _write_site(export_dir: Path, site: Path, meta: ExportMetadata, ort_dist: Path | None, parameters: int) -> None:
    solve = meta.solve or {}  # write_web_site checked that the export has solve.onnx
    # The export itself comes along (trm_edge.json and the graphs): the site is also an export
    # directory the runtime, the Node example or a server can open.
    for name in (SOLVE_FILE, *EXPORT_DIRECTORY):  # the validation puzzles only where the export was validated
        if (export_dir / name).is_file():
            shutil.copyfile(export_dir / name, site / name)
    for asset in WEB_PAGE:
        shutil.copyfile(PAGE / asset, site / asset)
    (site / WEB_ORT).mkdir()
    if ort_dist is not None:
        for name in ORT_FILES:
            shutil.copyfile(ort_dist / name, site / WEB_ORT / name)
    else:
        (site / WEB_ORT / "README.txt").write_text(
            "Put onnxruntime-web's files here: npm install onnxruntime-web, then copy "
            f"{', '.join(ORT_FILES)} from node_modules/onnxruntime-web/dist into this folder.\n")
    policy = parse_policy(solve["halting"]) if solve["halting"] != "max steps" else HaltPolicy()
    tokens, _, _ = read_validation_puzzles(export_dir, meta) or (np.zeros((0, 81), np.int32), None, False)
    codec = get_codec("sudoku")
    info = {
        "name": str(meta.source.get("checkpoint", "model")), "parameters": parameters, "task": meta.task,
        "seq_len": meta.model.seq_len, "hidden_size": meta.model.hidden_size, "state_len": meta.model.state_len,
        "rule": meta.halting.rule,
        "halting": {"name": solve["halting"], "max_steps": solve["max_steps"], "verified": policy.verified,
                    "stable": policy.stable_steps, "fixed": policy.fixed_steps, "model": policy.model_rule,
                    "threshold": policy.threshold, "cap": policy.step_cap},
        "examples": [codec.decode(row) for row in tokens],
    }
    (site / WEB_MODEL).write_text(json.dumps(info, indent=1))


class _SiteHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map: ClassVar[dict[str, str]] = {  # type: ignore[misc]  # the page's modules, WASM and graphs
        **http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript", ".js": "text/javascript",
        ".wasm": "application/wasm", ".json": "application/json", ".onnx": "application/octet-stream"}
    isolated = False

    def end_headers(self) -> None:
        if self.isolated:  # cross-origin isolation: what lets a page use threads (SharedArrayBuffer)
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet: a test or benchmark drives it
        pass


@contextlib.contextmanager
def serve_site(folder: Path, isolated: bool = False) -> Iterator[str]:
    """A static file server for `folder` on the loopback, yielding its URL; with `isolated`, the
    headers that let a page use threads (cross-origin isolation)."""
    handler = type("Handler", (_SiteHandler,), {"isolated": isolated})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
