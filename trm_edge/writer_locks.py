"""Which left-overs of a killed writer may be swept (trm_edge/atomic.py): a writer holds an flock on
its staging folder, temporary file or set-aside old copy while it lives (the kernel drops it when the
process dies, however it dies); a left-over whose lock is free is a dead writer's. A PID alone
misleads in containers (every writer is PID 1) and across PID namespaces; it is what is left where
there is no flock (Windows, some network file systems).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from pathlib import Path

if sys.platform != "win32":
    import fcntl


def is_dead(leftover: Path, pid: int, held: list[int]) -> bool:
    """Whether the writer that left `leftover` is gone: its lock can be taken at once (then kept in
    `held`); where locks are not to be had, whether process `pid` is not running."""
    if sys.platform != "win32":
        try:
            fd = os.open(leftover, os.O_RDONLY)
        except OSError:  # gone already (another sweep) or unreadable: left as it is
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its writer is alive
            os.close(fd)
            return False
        except OSError:  # a file system without flock: its writer held none either
            os.close(fd)
        else:
            held.append(fd)
            return True
    return not alive(pid)


def hold(path: Path) -> int | None:
    """Open `path` (a folder or a file) and lock it (see `lock_fd`)."""
    if sys.platform == "win32":  # no flock, and a folder cannot be opened there: the PID is what tells
        return None
    return lock_fd(os.open(path, os.O_RDONLY))


def lock_fd(fd: int) -> int | None:
    """Lock the open `fd` for as long as it stays open (`release`), waiting only for a sweep that
    holds it; None, with `fd` closed, where there is no flock (Windows, which could not rename an
    open file either; a file system without it)."""
    if sys.platform == "win32":
        os.close(fd)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.ENOLCK, errno.EBADF, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None
        raise
    return fd


def still_there(path: Path, lock: int | None) -> bool:
    """Whether `path` is still the file `lock` holds: between making it and locking it, a sweep may
    have taken it for a dead writer's and removed it (it held the lock, so the wait ended after)."""
    if lock is None:
        return True
    try:
        st, held = os.stat(path), os.fstat(lock)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


def release(lock: int | None) -> None:
    if lock is not None:
        with contextlib.suppress(OSError):
            os.close(lock)


def alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
