"""Writing files so that a reader never sees half of one: a temporary file in the same folder,
flushed to disk, then renamed over the target (a rename within one file system is atomic).

A full disk, a crash or Ctrl-C mid-write leaves the old file (or none) and at most a stray
`.tmp-*` file, never a truncated export, checkpoint or answer file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from trm_edge.errors import TrmEdgeError


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """`with atomic_file(p) as f: f.write(...)`: `p` appears whole when the block ends, or not at all."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise TrmEdgeError(f"cannot write {path}: folder {folder} does not exist")
    if path.is_dir():
        raise TrmEdgeError(f"cannot write {path}: it is a folder; give a file name")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=folder)
    except OSError as exc:
        raise TrmEdgeError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise TrmEdgeError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        _remove(tmp)
        raise


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    with atomic_file(path) as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
    return Path(path)


def ensure_not_input(output: str | Path, *inputs: str | Path | None) -> None:
    """An output must never overwrite an input (same file by any path)."""
    out = Path(output)
    for given in inputs:
        if given is None:
            continue
        src = Path(given)
        if out.resolve() == src.resolve() or (out.exists() and src.exists() and os.path.samefile(out, src)):
            raise TrmEdgeError(f"the output {out} is the input {src}: choose another output path")


def _remove(tmp: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(tmp)
