"""The layering README and docs/architecture.md promise, checked on the source: the core imports no
stage and no app code, no stage imports another stage or the app layer, the runtime imports neither
torch nor onnx at module level, and no module grows past what one person can hold in their head."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

STAGES = ("trm_edge.train", "trm_edge.export", "trm_edge.runtime")
APP = "trm_edge.app"
MAX_LINES = 420


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Every module `path` imports (absolute names), anywhere in it or only at module level."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _offending(paths: list[Path], forbidden: tuple[str, ...], top_level_only: bool = False) -> list[str]:
    return [
        f"{p.relative_to(REPO)} imports {name}"
        for p in paths
        for name in sorted(_imports(p, top_level_only))
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def test_the_core_imports_no_stage_and_no_app_code() -> None:
    core = [p for p in _modules(REPO / "trm_edge") if "app" not in p.relative_to(REPO / "trm_edge").parts
            and p.name != "__main__.py"]  # `python -m trm_edge` is the entry point into the app layer
    assert len(core) > 15
    assert _offending(core, (*STAGES, APP)) == []


def test_no_stage_imports_another_stage_or_the_app_layer() -> None:
    """Export, runtime and train each import the core only (the export directory's contract lives
    there, `trm_edge.contract`); only the app layer composes them."""
    for folder, stage in (("train", "trm_edge.train"), ("export", "trm_edge.export"), ("runtime", "trm_edge.runtime")):
        others = tuple(s for s in STAGES if s != stage)
        assert _offending(_modules(REPO / folder), (*others, APP)) == [], folder


def test_the_runtime_loads_without_torch_or_onnx() -> None:
    runtime = _modules(REPO / "runtime")
    assert _offending(runtime, ("torch", "onnx"), top_level_only=True) == []


def test_no_module_is_too_long_to_read() -> None:
    folders = ("trm_edge", "train", "export", "runtime")
    long = [f"{p.relative_to(REPO)}: {n} lines" for f in folders for p in _modules(REPO / f)
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert long == []
