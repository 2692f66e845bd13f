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

import contextlib
import errno
import tempfile
from collections.abc import Iterator
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
    with _unreachable_is_one_line(path):
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
    given = path = Path(path)
    with _unreachable_is_one_line(given):
        if replaced and path.is_symlink():
            # The writer (atomic._target) builds beside a link's target and swaps that, leaving the
            # link: the target's folder must take the new one, not the link's (a dangling link too).
            try:
                path = path.resolve()
            except RuntimeError:  # a loop of links (Python < 3.13)
                raise TrmEdgeError(f"cannot write {given}: it is a link that loops; give another folder") from None
        if path.is_dir():
            _require_writable(path, given)  # new files go in, or (replaced) the old ones are removed
            if not replaced:
                return
        elif path.exists():
            raise TrmEdgeError(f"cannot write {given}: it is a file, not a folder; give a new or existing folder")
        elif path.is_symlink():  # written into: the writer makes no folder at a link's missing target
            raise TrmEdgeError(f"cannot write {given}: it is a link to {path.readlink()}, which does not exist; "
                               "create that folder or give another")
        _require_writable(_nearest_folder(path.parent, given), given)


@contextlib.contextmanager
def _unreachable_is_one_line(path: Path) -> Iterator[None]:
    """Looking at `path` can fail (is_dir and exists raise EACCES under a folder the user cannot
    enter, on Python 3.11-3.13): one line naming it, not an internal error."""
    try:
        yield
    except OSError as exc:
        fix = "give a path in folders you can enter" if exc.errno == errno.EACCES else "give another path"
        raise TrmEdgeError(f"cannot write {path}: {exc.strerror or exc}; {fix}") from None


def _nearest_folder(folder: Path, target: Path) -> Path:
    """`folder` or its nearest parent that exists; a file on the way is the error it causes."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise TrmEdgeError(f"cannot write {target}: {folder} is a file, not a folder; give another path")
    return folder


def _require_writable(folder: Path, target: Path) -> None:
    # Create a file rather than ask os.access: root passes os.access for folders it still cannot
    # write (/sys, /proc, an immutable folder), and only a real write sees ACLs, read-only mounts
    # and full inode tables the same way the writer will. TemporaryFile opens it O_TMPFILE on
    # Linux (no name, so a kill leaves nothing); elsewhere it names it and unlinks it at once.
    try:
        with tempfile.TemporaryFile(prefix=".trm-edge-write-check-", dir=folder):
            pass
    except OSError:
        what = f"in {folder}: it is" if folder == target else f"{target}: folder {folder} is"
        raise TrmEdgeError(f"cannot write {what} not writable; give another path or make it writable") from None
