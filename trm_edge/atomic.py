"""Writing files and folders so that a reader never sees half of one.

A file: a temporary file in the same folder, flushed to disk, then renamed over the target (a
rename within one file system is atomic). A folder (an export, a dataset, a Triton repository, a
web site): built in a fresh hidden sibling `.NAME.staging-PID-N`, then swapped in whole.

A full disk, a crash, Ctrl-C or SIGKILL mid-write leaves the old file or folder (or none) and at
most a stray `.NAME.tmp-*` file or `.NAME.staging-*` / `.NAME.old-*` folder, which the next writer
of NAME sweeps away once the process that made it is gone; never a truncated export or a folder
of old and new files. A writer holds an flock on each such file or folder while it lives (the
kernel drops it when the process dies, however it dies), and the sweep takes only those whose lock
is free: a PID alone misleads in containers (every writer is PID 1) and across PID namespaces. The
PID stays in the name for people to read; where there is no flock (Windows, some network file
systems) it is what the sweep goes by.

Test hooks: every step a writer takes on disk goes through `fault_point` (trm_edge/fault_points.py
says how tests stop a writer there); `TRM_EDGE_SWAP=renames` swaps folders with two renames, as on
systems without an atomic exchange. The locks that tell a dead writer's left-overs from a live
one's are trm_edge/writer_locks.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from trm_edge.errors import TrmEdgeError
from trm_edge.fault_points import fault_point
from trm_edge.writer_locks import hold, is_dead, lock_fd, release, still_there

SWAP_ENV = "TRM_EDGE_SWAP"


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """`with atomic_file(p) as f: f.write(...)`: `p` appears whole when the block ends, or not at all."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        yield handle


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """`with atomic_path(p) as tmp: writer(tmp)`: for writers that take a file name (safetensors'
    save_file); `p` appears whole when the block ends, or not at all."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise TrmEdgeError(f"cannot write {path}: folder {folder} does not exist")
    if path.is_dir():
        raise TrmEdgeError(f"cannot write {path}: it is a folder; give a file name")
    try:
        recover(path)  # a dead writer's temporary file of this name goes
        while True:
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=folder)
            lock = lock_fd(fd)  # held until the file is in place: a sweep leaves it alone
            if still_there(Path(name), lock):
                break
            release(lock)
        os.chmod(name, 0o666 & ~_umask())  # mkstemp's 0600 would make the file private to its writer
    except OSError as exc:
        raise TrmEdgeError(f"cannot write {path}: {exc.strerror or exc}") from None
    tmp = Path(name)
    try:
        with _undone_on_failure(path, lambda: _remove(tmp)):
            yield tmp
            fault_point(f"{path.name}: written, not yet flushed")
            _fsync(tmp)
            fault_point(f"{path.name}: flushed, not yet renamed")
            os.replace(tmp, path)
            fault_point(f"{path.name}: renamed into place")
    finally:
        release(lock)


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    with atomic_file(path) as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
    return Path(path)


@contextlib.contextmanager
def atomic_folder(path: str | Path, marker: str | None = None) -> Iterator[Path]:
    """`with atomic_folder(p) as staging: build(staging)`: `p` holds the complete new folder when the
    block ends, or what it held before (an exception, Ctrl-C, a kill: the staging folder goes).

    An existing `p` is replaced only where it is empty or holds `marker` (the file that says it is
    one of ours, e.g. trm_edge.json): never a user's unrelated folder."""
    given = path
    try:  # probing `path` is inside: a folder the user cannot enter is one line, not "internal error"
        path = _target(Path(path))
        _check_replaceable(path, marker)
        path.parent.mkdir(parents=True, exist_ok=True)
        recover(path)
        staging, lock = _locked_staging(path)
    except OSError as exc:
        raise TrmEdgeError(f"cannot write {given}: {exc.strerror or exc}") from None
    try:
        with _undone_on_failure(path, lambda: _remove_tree(staging)):
            fault_point(f"{path.name}: staging folder made")
            yield staging
            fault_point(f"{path.name}: built, not yet flushed")
            _fsync_tree(staging)
            swap_in(staging, path)
    finally:
        release(lock)


@contextlib.contextmanager
def _undone_on_failure(path: Path, undo: Callable[[], None]) -> Iterator[None]:
    """On any failure (Ctrl-C included) `undo` what the block left; an OSError (a full disk, no
    permission) becomes one line that names `path`."""
    try:
        yield
    except OSError as exc:
        undo()
        raise TrmEdgeError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        undo()
        raise


def move_folder(source: Path, path: Path, marker: str | None = None) -> None:
    """Move the folder `source` to its sibling `path`, replacing (as `atomic_folder` does) what was there."""
    given = path
    try:
        path = _target(path)
        _check_replaceable(path, marker)
        recover(path)
        swap_in(source, path)
    except OSError as exc:
        raise TrmEdgeError(f"cannot write {given}: {exc.strerror or exc}") from None


def staged_for(folder: Path) -> Path | None:
    """The folder that `folder`, an `atomic_folder` staging folder, is built to replace; None for any
    other folder."""
    found = re.fullmatch(r"\.(.+)\.staging-\d+-\d+", folder.name)
    return folder.with_name(found.group(1)) if found else None


def _check_replaceable(path: Path, marker: str | None) -> None:
    """Only an empty folder, or one with `marker` (one of ours), may be replaced."""
    if path.exists() and not path.is_dir():
        raise TrmEdgeError(f"cannot write {path}: it is a file, and this writes a folder; give a new folder")
    if path.is_dir() and any(path.iterdir()) and (marker is None or not (path / marker).is_file()):
        what = f"it has files but no {marker}" if marker else "it is not empty"
        raise TrmEdgeError(f"{path} exists and is not a folder trm-edge wrote ({what}): give a new folder, or remove "
                           "it first (trm-edge replaces only its own)")


def swap_in(source: Path, path: Path) -> None:
    """Put the folder `source` at `path` (a sibling) in one step, and remove what `path` held.

    Linux: renameat2(RENAME_EXCHANGE) swaps the two folders atomically, then the old one (now at
    `source`'s name) is removed. Elsewhere two renames: `path` to `.NAME.old-PID-N`, `source` to
    `path`; a kill between them leaves no `path`, and the next writer puts the old copy back
    (`recover`)."""
    if not path.exists():
        fault_point(f"{path.name}: not yet renamed into place")
        os.rename(source, path)
        fault_point(f"{path.name}: renamed into place")
        _fsync_dir(path.parent)
        return
    fault_point(f"{path.name}: not yet swapped in")
    if _exchange(source, path):
        fault_point(f"{path.name}: swapped in, the old copy not yet removed")
        _fsync_dir(path.parent)
        _remove_tree(source)
    else:
        old = _fresh_sibling(path, "old", make=False)
        lock = hold(path)  # locked while set aside: a sweep puts it back only once this writer is gone
        try:
            os.rename(path, old)
            try:
                fault_point(f"{path.name}: the old copy set aside, the new not yet renamed")
                os.rename(source, path)
            except BaseException:  # Ctrl-C or a failed rename in the gap: the old copy goes back at once
                os.rename(old, path)
                raise
            fault_point(f"{path.name}: renamed into place, the old copy not yet removed")
            _fsync_dir(path.parent)
            _remove_tree(old)
        finally:
            release(lock)
    fault_point(f"{path.name}: the old copy removed")


_LEFTOVER = re.compile(r"\.(staging|old|tmp)-(\d+)-\w+$")


def recover(path: Path) -> None:
    """Tidy `path`'s siblings that writers killed mid-way left: where `path` is missing and a dead
    writer set an old copy aside (`swap_in`'s two renames), put it back; remove the rest of what
    dead writers left (staging folders, old copies, temporary files). Live writers' stay: a
    left-over is dead when its lock is free (see the module's notes)."""
    prefix = f".{path.name}."
    try:
        siblings = [p for p in path.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return
    held: list[int] = []  # the dead writers' locks, held while their left-overs go: no two sweeps take one
    try:
        dead = [(p, m.group(1)) for p in siblings if (m := _LEFTOVER.fullmatch(p.name[len(prefix) - 1:]))
                and is_dead(p, int(m.group(2)), held)]
        olds = sorted((p for p, kind in dead if kind == "old"), key=lambda p: p.stat().st_mtime_ns)
        if olds and not path.exists():
            os.rename(olds.pop(), path)  # the newest copy a dead writer set aside
            _fsync_dir(path.parent)
        for leftover, kind in dead:
            if kind == "tmp":
                _remove(leftover)
            elif leftover.exists():
                _remove_tree(leftover)
    finally:
        for fd in held:
            release(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where it is not available."""
    if sys.platform != "linux" or os.environ.get(SWAP_ENV, "").strip().lower() == "renames":
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # a libc without it (glibc before 2.28, some musl builds)
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):  # a file system without it
        return False
    raise OSError(code, os.strerror(code), str(b))


def _target(path: Path) -> Path:
    """The absolute folder to replace; where `path` is a link, the folder it points at (swapping the
    link itself would leave its target behind). Never the working folder or one above it: `.`, `..`
    and `/` have no name to put a sibling beside, and replacing them would pull the folder out from
    under the user."""
    target = path.resolve() if path.is_symlink() else Path(os.path.abspath(path))
    here = Path.cwd().resolve()
    if target.resolve() == here or target.resolve() in here.parents:
        raise TrmEdgeError(f"the output {path} would replace the folder you are in: give a new folder name")
    return target


def _fresh_sibling(path: Path, kind: str, make: bool = True) -> Path:
    """A new hidden name beside `path` that says which process made it (for people; `recover` reads
    the PID only where there are no locks)."""
    for n in range(1 << 16):
        candidate = path.with_name(f".{path.name}.{kind}-{os.getpid()}-{n}")
        if make:
            try:
                candidate.mkdir()  # the usual mode, under the user's umask (mkdtemp's would be 0700)
            except FileExistsError:
                continue
            return candidate
        if not candidate.exists():
            return candidate
    raise OSError(errno.EEXIST, "no free staging name", str(path))


def _locked_staging(path: Path) -> tuple[Path, int | None]:
    """A new staging folder beside `path`, locked by this process for as long as it builds there."""
    while True:
        staging = _fresh_sibling(path, "staging")
        try:
            lock = hold(staging)
        except FileNotFoundError:  # a sweep took it for a dead writer's before the lock: another name
            continue
        if still_there(staging, lock):
            return staging, lock
        release(lock)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """A rename is durable once its folder is flushed (where the system lets a folder be opened)."""
    with contextlib.suppress(OSError):
        _fsync(folder)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync(Path(folder) / name)
        _fsync_dir(Path(folder))


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def ensure_not_input(output: str | Path, *inputs: str | Path | None) -> None:
    """An output must never overwrite an input (same file by any path)."""
    out = Path(output)
    for given in inputs:
        if given is None:
            continue
        src = Path(given)
        if out.resolve() == src.resolve() or (out.exists() and src.exists() and os.path.samefile(out, src)):
            raise TrmEdgeError(f"the output {out} is the input {src}: choose another output path")


def _remove(tmp: str | Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(tmp)
