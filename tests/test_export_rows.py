"""Every row of the format table (export/format_table.py) that runs on a CPU, written by the library
call: `trm_edge.export.export(..., format=NAME)` writes exactly what the row lists, and the same
files as `trm-edge export --format NAME` (the command is a caller of that one function)."""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

import pytest

from trm_edge.export.format_table import FORMATS, get_format

from conftest import GPU, HAS_TENSORRT, run_cli_in_process


def _top_level(folder: Path) -> set[str]:
    """What a row lists: names at the top, folders ending in /. Dot files are left out: the
    runtime's hash cache (.trm_edge.verified) appears where an export is read, not written."""
    return {p.name + ("/" if p.is_dir() else "") for p in folder.iterdir() if not p.name.startswith(".")}


def _every_file(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
            and not p.name.startswith(".")}


def _skip_reason(name: str) -> str | None:
    entry = get_format(name)
    if "tensorrt" in entry.needs and (GPU is None or not HAS_TENSORRT):
        return f"--format {name} builds a TensorRT engine: needs an NVIDIA GPU and the tensorrt package"
    missing = entry.missing()
    if missing:
        return (f"--format {name} needs {', '.join(missing)} (pip install 'trm-edge[{entry.extra}]'; tests/edge "
                "runs it where they are)")
    return None


@pytest.mark.parametrize("name", list(FORMATS))
def test_the_library_writes_what_the_row_lists_and_what_the_command_writes(
    name: str, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from trm_edge.export import export
    from trm_edge.export.formats import OnnxOptions

    reason = _skip_reason(name)
    if reason is not None:
        pytest.skip(reason)
    entry = get_format(name)
    written = export(tiny_checkpoint, tmp_path / "library", name, OnnxOptions(validate_steps=1))
    assert written == tmp_path / "library"
    listed = _top_level(written)
    unpromised = {n for n in listed if not any(fnmatch(n, w) for w in entry.writes)}
    unwritten = {w for w in entry.writes if not any(fnmatch(n, w) for n in listed)}
    assert unpromised == set() and unwritten == set(), f"the {name} row lists {entry.writes}, the writer wrote {listed}"

    done = run_cli_in_process("export", str(tiny_checkpoint), "-o", str(tmp_path / "command"), "--format", name,
                              "--validate-steps", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _every_file(tmp_path / "command") == _every_file(written)
