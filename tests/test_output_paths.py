"""Every command that writes refuses an output path it cannot write, in one line with exit code 2,
before any work (issue 48): a read-only folder and a file used as a folder, for each of them."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import trm_edge
from trm_edge.errors import TrmEdgeError
from trm_edge.export.format_table import FORMATS
from trm_edge.output_paths import check_output_file, check_output_folder

from conftest import FIXTURES, REFERENCE, TRAINED, run_cli, run_cli_in_process

SUDOKU = Path(trm_edge.__file__).parent / "models" / "sudoku-small.safetensors"
HELD = TRAINED / "test_300.npz"
# Running as root, chmod does not stop a write: sysfs takes no new file from anyone, root included.
AS_ROOT = os.geteuid() == 0


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder this process cannot write in."""
    if AS_ROOT:
        if not Path("/sys").is_dir():
            pytest.skip("running as root and no /sys: no folder here that root cannot write")
        yield Path("/sys")
        return
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


def writers(out: Path, work: Path) -> list[tuple[list[str], Path]]:
    """Every command that writes, with the output its error must name, inside `out`. Inputs are real
    where they are at hand; the export `work/ex` is an empty folder: the check comes before it is opened."""
    ex = work / "ex"
    ex.mkdir(exist_ok=True)
    arc = FIXTURES / "arc"
    lines: list[tuple[list[object], Path]] = [
        (["convert", REFERENCE / "trm_att_arc.pt", "-o", out / "model.safetensors"], out / "model.safetensors"),
        (["slice-puzzles", SUDOKU, "-o", out / "sliced.safetensors", "--ids", "0"], out / "sliced.safetensors"),
        (["demo", "-o", out / "demo"], out / "demo"),
        *((["export", "shipped:sudoku-small", "-o", out / name, "--format", name], out / name) for name in FORMATS),
        (["export", SUDOKU, "-o", out / "export", "--solve-graph", "--data", HELD], out / "export"),
        (["build-engine", out / "ex"], out / "ex"),
        (["calibrate", out / "ex", "--data", HELD], out / "ex"),
        (["calibrate", ex, "--data", HELD, "-o", out / "curve.png"], out / "curve.png"),
        (["train", "maze-small-cpu", "-o", out / "run"], out / "run"),  # its recipe builds data first
        (["data", "sudoku-generate", "-o", out / "data", "--train", "10", "--test", "2"], out / "data"),
        (["data", "sudoku-csv", "-o", out / "data", "--train-csv", FIXTURES / "sudoku_extreme_train_1k.csv"],
         out / "data"),
        (["data", "maze-generate", "-o", out / "data", "--train", "4", "--test", "2", "--size", "6"], out / "data"),
        (["data", "maze-csv", "-o", out / "data", "--train-csv", FIXTURES / "maze_hard_test_head.csv"], out / "data"),
        (["data", "arc", "-o", out / "data", "--source", arc, "--subsets", "training", "--max-tasks", "1"],
         out / "data"),
        (["solve", ex, HELD, "-o", out / "answers.npz"], out / "answers.npz"),
        (["solve-arc", ex, arc / "arc-agi_evaluation_challenges.json", "-o", out / "submission.json"],
         out / "submission.json"),
        (["bench", ex, "-o", out / "bench.json"], out / "bench.json"),
        (["bench", ex, "-o", out / "bench.png"], out / "bench.png"),
    ]
    return [([str(a) for a in args], target) for args, target in lines]


def tree(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_size if p.is_file() else -1) for p in root.rglob("*"))


def assert_refused(args: list[str], path: str, why: str) -> None:
    proc = run_cli_in_process(*args)
    assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert f"cannot write {path}" in lines[0] and why in lines[0], (args, lines[0])


@pytest.mark.parametrize("kind", ["read-only folder", "file used as a folder"])
def test_every_writer_refuses_an_unwritable_output_before_any_work(
    kind: str, read_only: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # where a default output would land
    if kind == "read-only folder":
        out, why = read_only, f"folder {read_only} is not writable"
    else:
        out, why = work / "a_file", "a_file is a file, not a folder"
        out.write_text("x")
    cases = writers(out, work)
    before = tree(tmp_path)
    for args, target in cases:
        assert_refused(args, str(target), why)
    # Nothing was built, exported, trained or written anywhere: each refused before its work.
    assert tree(tmp_path) == before


def test_default_outputs_in_a_read_only_working_folder_are_refused(
    read_only: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(read_only)
    why = "folder . is not writable"
    assert_refused(["export", "shipped:sudoku-small"], "sudoku-small_fp32_export", why)
    assert_refused(["demo"], "trm-edge-demo", why)
    assert_refused(["train", "maze-small-cpu"], "runs/maze-small-cpu", why)


def test_a_user_sees_the_one_line_from_the_real_command(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    proc = run_cli("data", "sudoku-generate", "-o", str(blocker / "data"), "--train", "10", "--test", "2", check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"error: cannot write {blocker / 'data'}: {blocker} is a file, not a folder; " \
                                  "give another path"


@contextlib.contextmanager
def frozen(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`folder` takes no new entries while what is already in it stays writable: chmod, or as root
    (who writes through mode bits, and where chattr +i fails on overlayfs, as in CI's containers) the
    write probe's file creation refused with EACCES in `folder` only. That probe is then this
    test's input, not what it tests: which folder must take new files, and the one line saying so."""
    if not AS_ROOT:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    real = tempfile.TemporaryFile

    def refused_in_folder(*args: Any, **kwargs: Any) -> Any:
        if Path(kwargs.get("dir") or ".").resolve() == folder.resolve():
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(folder))
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(tempfile, "TemporaryFile", refused_in_folder)
        yield


def test_a_replaced_folder_needs_its_parent_writable_and_one_written_into_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tmp_path / "parent"
    existing = parent / "existing"
    existing.mkdir(parents=True)
    with frozen(parent, monkeypatch):
        check_output_folder(existing)  # written into: its own files only
        with pytest.raises(TrmEdgeError, match=re.escape(f"cannot write {existing}: folder {parent} is not writable")):
            check_output_folder(existing, replaced=True)  # built beside it, then swapped in
        why = f"folder {parent} is not writable"
        assert_refused(["export", "shipped:sudoku-small", "-o", str(existing)], str(existing), why)
        assert_refused(["data", "sudoku-generate", "-o", str(existing), "--train", "10", "--test", "2"], str(existing),
                       why)
        assert not any(existing.iterdir())


def test_the_checks_say_what_is_wrong_and_leave_nothing_behind(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    before = tree(tmp_path)
    check_output_file(tmp_path / "answers.npz", ".npz")
    check_output_file(tmp_path / "new" / "deeper" / "model.safetensors", makes_folders=True)
    check_output_folder(tmp_path / "new" / "deeper", replaced=True)
    assert tree(tmp_path) == before  # the write probe is removed, and no folder was made
    refusals = [
        (lambda: check_output_file(tmp_path / "new" / "answers.npz", ".npz"), "folder .*new does not exist"),
        (lambda: check_output_file(tmp_path, ".npz"), "give a file name ending in .npz"),
        (lambda: check_output_file(blocker / "a" / "b.json", makes_folders=True), "a_file is a file, not a folder"),
        (lambda: check_output_file(tmp_path / "dir.npz", ".npz"), "it is a folder"),
        (lambda: check_output_folder(blocker), "it is a file, not a folder"),
        (lambda: check_output_folder(blocker / "x", replaced=True), "a_file is a file, not a folder"),
        (lambda: check_output_file(blocker, None, blocker), "is the input"),
    ]
    (tmp_path / "dir.npz").mkdir()
    for check, words in refusals:
        with pytest.raises(TrmEdgeError, match=words):
            check()


# Run in a child that drops to `nobody` after its imports (the interpreter may live under /root,
# which nobody cannot enter), since root enters any folder whatever its mode.
AS_NOBODY = """
import os, pwd, sys
from trm_edge.errors import TrmEdgeError
from trm_edge.output_paths import check_output_file, check_output_folder
if os.geteuid() == 0:
    try:
        nobody = pwd.getpwnam("nobody")
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
    except (KeyError, OSError) as exc:
        print(f"cannot become nobody: {exc}")
        sys.exit(77)
private = sys.argv[1]
for check in (lambda: check_output_file(private + "/x.npz", ".npz"),
              lambda: check_output_file(private + "/a/b.json", makes_folders=True),
              lambda: check_output_folder(private + "/out"),
              lambda: check_output_folder(private + "/out", replaced=True)):
    try:
        check()
    except TrmEdgeError as exc:
        print(exc)
"""


def test_a_path_under_a_folder_the_user_cannot_enter_is_one_line(tmp_path: Path) -> None:
    # Python 3.11-3.13's is_dir and exists raise PermissionError there, which was "internal error".
    private = tmp_path / "private"
    private.mkdir()
    private.chmod(0o700 if AS_ROOT else 0o000)  # root's 0700 folder shuts nobody out
    try:
        proc = subprocess.run([sys.executable, "-c", AS_NOBODY, str(private)], capture_output=True, text=True,
                              timeout=60)
    finally:
        private.chmod(0o700)
    if proc.returncode == 77:
        pytest.skip(f"running as root and {proc.stdout.strip()}: no user here for whom a folder is shut")
    assert proc.returncode == 0, proc.stderr
    fix = "Permission denied; give a path in folders you can enter"
    assert proc.stdout.splitlines() == [f"cannot write {private}/{name}: {fix}" for name in ("x.npz", "a/b.json",
                                                                                             "out", "out")]


def test_a_link_to_a_replaced_folder_is_checked_where_the_writer_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, links = tmp_path / "real", tmp_path / "links"
    (real / "export").mkdir(parents=True)
    links.mkdir()
    link, dangling = links / "export", links / "gone"
    link.symlink_to(real / "export")
    dangling.symlink_to(real / "gone")
    with frozen(links, monkeypatch):  # the writer builds beside the target, in `real`: the links' folder is not written
        check_output_folder(link, replaced=True)
        check_output_folder(dangling, replaced=True)
    with frozen(real, monkeypatch), pytest.raises(
        TrmEdgeError, match=re.escape(f"cannot write {link}: folder {real} is not writable")
    ):
        check_output_folder(link, replaced=True)
    # Written into, a dangling link is no folder the writer can make: said as such, not "a file".
    with pytest.raises(TrmEdgeError, match=re.escape(f"cannot write {dangling}: it is a link to {real / 'gone'}, "
                                                     "which does not exist")):
        check_output_folder(dangling)


KILLED_AT_UNLINK = """
import os, signal, sys
from trm_edge.output_paths import check_output_file
def kill_at_unlink(event, args):
    if event == "os.remove":  # a probe with a name is between its create and its unlink
        os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(kill_at_unlink)
check_output_file(sys.argv[1] + "/answers.npz", ".npz")
"""


def test_a_killed_write_probe_leaves_no_file(tmp_path: Path) -> None:
    try:
        os.close(os.open(tmp_path, os.O_TMPFILE | os.O_WRONLY))
    except (AttributeError, OSError) as exc:
        pytest.skip(f"no O_TMPFILE here ({exc}): the probe has a name between its create and unlink")
    proc = subprocess.run([sys.executable, "-c", KILLED_AT_UNLINK, str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert list(tmp_path.iterdir()) == []
