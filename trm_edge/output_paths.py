"""The one check every writing command makes on its output paths, before any work: a path that
cannot be written is one line naming it and the fix, not a crash after minutes of work.

Two kinds of output:
- a FILE (`check_output_file`): not a folder; its folder exists (or can be made, where the
  writer makes it), is a folder, and takes new files (the writer renames a temporary file in);
- a FOLDER (`check_output_folder`): not a file; it, or its nearest existing parent, takes new
  files. A folder the command replaces whole is built beside it and swapped in, so its parent
  must take new files too.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from trm_edge.atomic import ensure_not_input
from trm_edge.errors import TrmEdgeError


def check_output_file(path: str | Path, suffix: str | None = None, *inputs: str | Path | None,
                      makes_folders: bool = False) -> None:
    """`path` can be written: named with `suffix` (when given), not a folder, in a folder that
    exists (or, with `makes_folders`, can be made) and is writable, and none of the `inputs`."""
    path = Path(path)
    if suffix is not None and path.suffix != suffix:
        raise TrmEdgeError(f"{path}: give a file name ending in {suffix} (it is written exactly there)")
    if path.is_dir():
        named = f" ending in {suffix}" if suffix else ""
        raise TrmEdgeError(f"cannot write {path}: it is a folder; give a file name{named}")
    folder = path.parent
    existing = _nearest_folder(folder, path)
    if existing != folder and not makes_folders:
        raise TrmEdgeError(f"cannot write {path}: folder {folder} does not exist; create it first")
    _require_writable(existing, path)
    ensure_not_input(path, *inputs)


def check_output_folder(path: str | Path, replaced: bool = False) -> None:
    """`path` can be written as a folder: written into (made if missing), or with `replaced` built
    beside it and swapped in (its parent takes the new folder, the old one is removed)."""
    path = Path(path)
    if path.is_dir():
        _require_writable(path, path)  # new files go in, or (replaced) the old ones are removed
        if not replaced:
            return
    elif path.exists() or path.is_symlink():
        raise TrmEdgeError(f"cannot write {path}: it is a file, not a folder; give a new or existing folder")
    _require_writable(_nearest_folder(path.parent, path), path)


def _nearest_folder(folder: Path, target: Path) -> Path:
    """`folder` or its nearest parent that exists; a file on the way is the error it causes."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise TrmEdgeError(f"cannot write {target}: {folder} is a file, not a folder; give another path")
    return folder


def _require_writable(folder: Path, target: Path) -> None:
    # Create and remove a file rather than ask os.access: root passes os.access for folders it
    # still cannot write (/sys, /proc, an immutable folder), and only a real write sees ACLs,
    # read-only mounts and full inode tables the same way the writer will.
    try:
        handle, probe = tempfile.mkstemp(prefix=".trm-edge-write-check-", dir=folder)
    except OSError:
        what = f"in {folder}: it is" if folder == target else f"{target}: folder {folder} is"
        raise TrmEdgeError(f"cannot write {what} not writable; give another path or make it writable") from None
    os.close(handle)
    os.unlink(probe)
