"""What trm-edge writes for a user to keep is replaced whole or not at all: old or complete new,
never a mix, whatever stops the writer.

The writers stop themselves with SIGKILL at a chosen step on disk (trm_edge/atomic.py's test hooks:
TRM_EDGE_FAULT_LOG counts the steps in a first run, TRM_EDGE_FAULT_AT=N kills at the N-th), run as a
user runs them (the CLI in a fresh interpreter). After each kill the target is compared with the
old bytes or checked as a complete new one, then the next writer's sweep (`recover`) runs and must
leave the same, with nothing beside it. TRM_EDGE_SWAP=renames runs the portable two-rename swap,
whose gap (no folder at all for a moment) the sweep must close by putting the old copy back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from trm_edge.atomic import SWAP_ENV, recover
from trm_edge.contract.export_dir import METADATA_FILE, VERIFIED_FILE, read_metadata
from trm_edge.errors import TrmEdgeError
from trm_edge.fault_points import FAULT_AT_ENV, FAULT_LOG_ENV, FAULT_SIGNAL_ENV

from conftest import run_cli_in_process, tiny_checkpoint_file

SUDOKU = "..3.2.6..9..3.5..1..18.64....81.29..7.......8..67.82....26.95..8..2.3..9..5.1.3.."


def _files(target: Path) -> dict[str, bytes]:
    """A folder's files by relative path (a file's bytes under '')."""
    if target.is_file():
        return {"": target.read_bytes()}
    return {str(p.relative_to(target)): p.read_bytes() for p in sorted(target.rglob("*")) if p.is_file()}


def _writer(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`trm-edge ARGS` as a user runs it (or, for ['-c', CODE], that Python code)."""
    command = [sys.executable, *args] if args[0] == "-c" else [sys.executable, "-m", "trm_edge", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, **env})


def _points(args: list[str], tmp: Path, env: dict[str, str]) -> list[str]:
    """The labels of the steps a whole run of the writer takes on disk, in order."""
    log = tmp / "points.log"
    done = _writer(args, {**env, FAULT_LOG_ENV: str(log)})
    assert done.returncode == 0, done.stderr
    return [line.split(" ", 1)[1] for line in log.read_text().splitlines()]


def _killed_at(point: int, args: list[str], tmp: Path, env: dict[str, str], sig: str = "KILL") -> str:
    """Run the writer until its `point`-th step and stop it there; returns that step's label."""
    log = tmp / f"killed-{point}-{env.get(SWAP_ENV)}.log"
    done = _writer(args, {**env, FAULT_AT_ENV: str(point), FAULT_SIGNAL_ENV: sig, FAULT_LOG_ENV: str(log)})
    assert done.returncode in ((-signal.SIGKILL,) if sig == "KILL" else (2, 130, -signal.SIGINT)), done.stderr[-500:]
    return log.read_text().splitlines()[-1].split(" ", 1)[1]


def _left(target: Path, old: dict[str, bytes], is_new) -> str:  # type: ignore[no-untyped-def]
    """'old', 'new', 'none' (nothing where there was something: only the two-rename swap's gap may
    leave that), or 'mixed'."""
    if not target.exists():
        return "old" if not old else "none"
    if _files(target) == old:
        return "old"
    return "new" if is_new(target) else "mixed"


def _copy_to(files: dict[str, bytes], target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(data)  # (name '': the target is a file)
    return target


def _kill_everywhere(points: list[int], args_for, old: dict[str, bytes], is_new, tmp: Path,  # type: ignore[no-untyped-def]
                     swap: str, name: str = "target") -> dict[str, tuple[str, str]]:
    """Kill a writer that replaces a copy of `old` at each of `points`; each must leave the old or the
    complete new (the two-rename swap's gap: nothing, until the sweep puts the old back), and after
    the next writer's sweep the same with nothing beside it. Returns {step: (left, after the sweep)}."""
    targets = {point: _copy_to(old, tmp / f"{swap}-{point}" / name) for point in points}
    with ThreadPoolExecutor(max_workers=2) as pool:  # independent runs, one per core
        labels = list(pool.map(lambda p: _killed_at(p, args_for(targets[p]), tmp, {SWAP_ENV: swap}), points))
    seen = {}
    for point, label in zip(points, labels, strict=True):
        target = targets[point]
        left = _left(target, old, is_new)
        assert left in ("old", "new") or (left == "none" and swap == "renames"), (label, left)
        recover(target)  # what the next writer of the target does first
        after = _left(target, old, is_new)
        assert after in ("old", "new") and _beside(target) == [], (label, after, _beside(target))
        seen[label] = (left, after)
    return seen


def _beside(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}."))


# ---- the export directory --------------------------------------------------------------------

@pytest.fixture(scope="module")
def old_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, bytes]]:
    """(new model's checkpoint, an export of another model with solve.onnx, that export's bytes)."""
    tmp = tmp_path_factory.mktemp("atomic")
    old_model = tiny_checkpoint_file(tmp / "old.safetensors", seed=1)
    new_model = tiny_checkpoint_file(tmp / "new.safetensors", seed=2)
    old = tmp / "old_export"
    done = run_cli_in_process("export", str(old_model), "-o", str(old), "--solve-graph", "--validate-steps", "1")
    assert done.returncode == 0, done.stderr
    assert (old / "solve.onnx").is_file()
    return new_model, old, _files(old)


def _complete_new_export(folder: Path) -> bool:
    """Every file belongs (read_metadata checks sizes and hashes), it is the new model's, nothing else
    is there, and the runtime solves with it."""
    from trm_edge.runtime.solver import Solver

    try:
        meta = read_metadata(folder)
    except TrmEdgeError:
        return False
    present = {p.name for p in folder.iterdir()}
    if meta.source.get("checkpoint") != "new.safetensors" or present != {*meta.files, METADATA_FILE, VERIFIED_FILE}:
        return False
    Solver.load(folder, backend="ort-cpu", slots=1, halt="fixed:1").solve([SUDOKU])
    return True


def test_a_killed_export_leaves_the_old_export_or_the_complete_new_one(
    old_export: tuple[Path, Path, dict[str, bytes]], tmp_path: Path
) -> None:
    new_model, _, old_files = old_export

    def args_for(target: Path) -> list[str]:
        return ["export", str(new_model), "-o", str(target), "--validate-steps", "1"]

    target = _copy_to(old_files, tmp_path / "count" / "target")
    labels = _points(args_for(target), tmp_path, {})
    assert _left(target, old_files, _complete_new_export) == "new" and _beside(target) == []
    built = labels.index("target: built, not yet flushed") + 1
    swap = labels.index("target: not yet swapped in") + 1
    # Every step from the build's end on; of the build's (2 s each on 2 cores), the first and the
    # metadata written.
    points = [1, labels.index("export: metadata written") + 1, *range(built, len(labels) + 1)]
    seen = _kill_everywhere(points, args_for, old_files, _complete_new_export, tmp_path, "exchange")
    assert [after for _, after in seen.values()] == ["old"] * 4 + ["new"] * 2, seen
    # The two renames: the old copy set aside (nothing there until the sweep), the new one in place.
    seen = _kill_everywhere([swap + 1, swap + 2], args_for, old_files, _complete_new_export, tmp_path, "renames")
    assert seen == {"target: the old copy set aside, the new not yet renamed": ("none", "old"),
                    "target: renamed into place, the old copy not yet removed": ("new", "new")}, seen


def test_ctrl_c_during_an_export_removes_its_staging_folder(old_export: tuple[Path, Path, dict[str, bytes]],
                                                            tmp_path: Path) -> None:
    new_model, _, old_files = old_export
    target = _copy_to(old_files, tmp_path / "ex")
    label = _killed_at(2, ["export", str(new_model), "-o", str(target), "--validate-steps", "1"], tmp_path, {}, "INT")
    assert label == "trm_edge.json: written, not yet flushed"  # the whole build in the staging folder
    assert _files(target) == old_files and _beside(target) == []


def test_a_failed_validation_leaves_the_previous_export_and_keeps_the_build(
    old_export: tuple[Path, Path, dict[str, bytes]], tmp_path: Path
) -> None:
    new_model, _, old_files = old_export
    target = _copy_to(old_files, tmp_path / "ex")
    failed = tmp_path / "ex.failed-validation"
    failed.mkdir()
    (failed / METADATA_FILE).write_text("{}")  # an older failed build: replaced
    done = run_cli_in_process("export", str(new_model), "-o", str(target), "--validate-steps", "1", "--atol", "1e-12")
    assert done.returncode == 2 and "validation failed" in done.stderr, done.stderr
    assert f"kept for inspection at {failed}" in done.stderr and f"the export at {target} was left as it was" in \
        done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert _files(target) == old_files and _beside(target) == []
    assert run_cli_in_process("solve", str(target), SUDOKU, "--halt", "fixed:1").returncode == 0
    assert read_metadata(failed, allow_failed_validation=True).source["checkpoint"] == "new.safetensors"
    with pytest.raises(TrmEdgeError, match="failed its validation"):
        read_metadata(failed)


def test_a_plain_re_export_leaves_no_file_of_the_old_one(old_export: tuple[Path, Path, dict[str, bytes]],
                                                         tmp_path: Path) -> None:
    from trm_edge.export import export
    from trm_edge.export.formats import OnnxOptions

    new_model, _, old_files = old_export
    target = _copy_to(old_files, tmp_path / "ex")
    (target / "notes.txt").write_text("mine")  # in an export folder: replaced with the rest
    assert export(new_model, target, onnx=OnnxOptions(validate_steps=1)) == target
    assert not (target / "solve.onnx").exists() and not (target / "notes.txt").exists()
    assert _complete_new_export(target) and _beside(target) == []


def test_a_file_that_does_not_belong_is_refused_in_one_line(old_export: tuple[Path, Path, dict[str, bytes]],
                                                            tmp_path: Path) -> None:
    _, _, old_files = old_export
    for name, change in (("step.onnx", lambda b: b[:-1] + bytes([b[-1] ^ 1])), ("solve.onnx", lambda b: b + b"x"),
                         ("validation.npz", lambda b: b[: len(b) // 2])):
        target = _copy_to(old_files, tmp_path / name / "ex")
        read_metadata(target)  # checked once: its files' hashes are cached beside trm_edge.json
        with open(target / name, "r+b") as handle:  # changed in place: the same file, other bytes
            data = change(handle.read())
            handle.seek(0)
            handle.truncate()
            handle.write(data)
        done = run_cli_in_process("solve", str(target), SUDOKU)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert f"{target / name} does not belong to this export (" in done.stderr and "export again" in done.stderr


def test_a_folder_that_is_not_an_export_is_never_replaced(tiny_checkpoint: Path, tmp_path: Path) -> None:
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "cat.jpg").write_bytes(b"\xff\xd8 a cat")
    done = run_cli_in_process("export", str(tiny_checkpoint), "-o", str(mine), "--no-validate")
    assert done.returncode == 2 and "is not a folder trm-edge wrote" in done.stderr, done.stderr
    assert _files(mine) == {"cat.jpg": b"\xff\xd8 a cat"} and _beside(mine) == []


# ---- a dataset folder (`trm-edge data`) ----------------------------------------------------

def test_a_killed_data_build_leaves_the_old_dataset_or_the_complete_new_one(tmp_path: Path) -> None:
    from trm_edge.train.dataset import load_info, load_split

    def args_for(target: Path, train: int = 8) -> list[str]:
        return ["data", "sudoku-generate", "-o", str(target), "--train", str(train), "--test", "3", "--seed", "1"]

    def is_new(folder: Path) -> bool:
        try:
            info = load_info(folder)
        except TrmEdgeError:
            return False
        return info.splits == {"train": 8, "test": 3} and len(load_split(folder, "train")) == 8

    old_dir = tmp_path / "old" / "data"
    assert _writer(args_for(old_dir, train=5), {}).returncode == 0
    old_files = _files(old_dir)
    labels = _points(args_for(old_dir), tmp_path, {})  # rebuilt over the old one: every step counted
    seen = _kill_everywhere(list(range(1, len(labels) + 1)), args_for, old_files, is_new, tmp_path, "exchange")
    assert [after for _, after in seen.values()] == ["old"] * (len(labels) - 2) + ["new"] * 2, seen
    swap = labels.index("data: not yet swapped in") + 1
    seen = _kill_everywhere([swap + 1, swap + 2], args_for, old_files, is_new, tmp_path, "renames")
    assert [v for v in seen.values()] == [("none", "old"), ("new", "new")], seen


# ---- a Triton repository, `solve --out`, a training state -----------------------------------

def test_a_killed_triton_export_leaves_no_repository_or_a_complete_one(
    old_export: tuple[Path, Path, dict[str, bytes]], tmp_path: Path
) -> None:
    """A repository goes only where there is none (Triton loads every folder in it): old is nothing."""
    _, old, _ = old_export

    def args_for(target: Path) -> list[str]:
        return ["export", str(old), "--format", "triton", "-o", str(target), "--triton-device", "cpu"]

    def is_new(repo: Path) -> bool:
        try:
            read_metadata(repo / "trm_solver" / "1", graphs_here=False)
        except TrmEdgeError:
            return False
        return all((repo / name / "1" / "model.onnx").is_file() for name in ("trm_solver_init", "trm_solver_step")) \
            and (repo / "README.md").is_file() and (repo / "trm_solver" / "config.pbtxt").is_file()

    labels = _points(args_for(tmp_path / "count" / "target"), tmp_path, {})
    assert labels[-2:] == ["target: not yet renamed into place", "target: renamed into place"], labels
    seen = _kill_everywhere([len(labels) - 1, len(labels)], args_for, {}, is_new, tmp_path, "exchange")
    assert [after for _, after in seen.values()] == ["old", "new"], seen


def test_a_killed_answers_file_is_the_old_one_or_the_complete_new_one(
    old_export: tuple[Path, Path, dict[str, bytes]], tmp_path: Path
) -> None:
    import numpy as np

    _, old, _ = old_export
    puzzles = tmp_path / "puzzles.npz"
    with np.load(old / "validation.npz") as kept:
        np.savez(puzzles, inputs=kept["tokens"][:4])
    old_answers = {"": b"answers of an earlier run\n"}

    def args_for(target: Path) -> list[str]:
        return ["solve", str(old), str(puzzles), "--backend", "ort-cpu", "-o", str(target)]

    count = _copy_to(old_answers, tmp_path / "count" / "answers.npz")
    labels = _points(args_for(count), tmp_path, {})
    new = count.read_bytes()
    seen = _kill_everywhere(list(range(1, len(labels) + 1)), args_for, old_answers,
                            lambda path: path.read_bytes() == new, tmp_path, "exchange", "answers.npz")
    assert [after for _, after in seen.values()] == ["old"] * (len(seen) - 1) + ["new"], seen


# save_train_state itself, on the least a Trainer it reads (a real one is minutes to build): a small
# model with its optimiser's moments, a carry, the random states, the data position.
_SAVE_TRAIN_STATE = """import sys, types
from pathlib import Path
import torch
from trm_edge.train.train_state import Carry, save_train_state
torch.manual_seed(0)
model = torch.nn.Linear(256, 256)
optimizer = torch.optim.AdamW(model.parameters())
model(torch.ones(1, 256)).sum().backward()
optimizer.step()
trainer = types.SimpleNamespace(
    model=model, ema=None, optimizer=optimizer, carry=Carry(*[torch.zeros(2, 3)] * 7), rank=0, world=1,
    explore_rng=torch.Generator().manual_seed(0), step=7, order=types.SimpleNamespace(epoch=0, offset=3),
    recipe=types.SimpleNamespace(to_dict=dict))
save_train_state(trainer, Path(sys.argv[1]))
"""


def test_a_killed_training_state_save_is_the_old_state_or_the_complete_new_one(tmp_path: Path) -> None:
    """train_state.save_train_state killed at each step it takes on disk (none, were it to write in place)."""
    write = _SAVE_TRAIN_STATE

    def args_for(target: Path) -> list[str]:
        return ["-c", write, str(target)]

    old_state = {"": b"a state saved at an earlier step"}
    count = _copy_to(old_state, tmp_path / "count" / "step_1.state.safetensors")
    labels = _points(args_for(count), tmp_path, {})
    new = count.read_bytes()
    seen = _kill_everywhere(list(range(1, len(labels) + 1)), args_for, old_state,
                            lambda path: path.read_bytes() == new, tmp_path, "exchange")
    assert [after for _, after in seen.values()] == ["old", "old", "new"], seen


# ---- review fixes ------------------------------------------------------------------------------

def test_files_are_hashed_without_hashlib_file_digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Python 3.10 (JetPack 6) has no hashlib.file_digest: the export's and the checkpoint's hashes
    both come from one chunked reader."""
    import hashlib

    from trm_edge import checkpoint
    from trm_edge.contract import export_dir

    monkeypatch.delattr(hashlib, "file_digest", raising=False)
    path = tmp_path / "blob"
    data = os.urandom((1 << 20) + 7)  # more than one chunk
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert export_dir.file_sha256(path) == expected and checkpoint.file_sha256(path) == expected


def test_a_folder_that_cannot_be_probed_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder the user cannot enter (faked: the tests run as root) is 'cannot write', not 'internal error'."""
    from trm_edge.atomic import atomic_folder, move_folder

    def denied(self: Path) -> bool:
        raise PermissionError(13, "Permission denied", str(self))

    source = tmp_path / "built"
    source.mkdir()
    monkeypatch.setattr(Path, "is_symlink", denied)
    with pytest.raises(TrmEdgeError, match="cannot write .*Permission denied"), atomic_folder(tmp_path / "x"):
        pass
    with pytest.raises(TrmEdgeError, match="cannot write .*Permission denied"):
        move_folder(source, tmp_path / "y")
    monkeypatch.undo()
    monkeypatch.setattr(Path, "exists", denied)
    with pytest.raises(TrmEdgeError, match="cannot write .*Permission denied"), atomic_folder(tmp_path / "x"):
        pass


@pytest.mark.parametrize("given", [".", "..", "/"])
def test_the_working_folder_or_one_above_it_is_never_replaced(given: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from trm_edge.atomic import atomic_folder

    here = tmp_path / "work"
    here.mkdir()
    monkeypatch.chdir(here)
    with pytest.raises(TrmEdgeError, match=f"^the output {given} would replace the folder you are in: give a new "
                                           "folder name$"), atomic_folder(given):
        pass
    assert os.listdir(here) == []


_HOLD_LOCK = ("import fcntl, os, sys, time\nfor name in sys.argv[1:]:\n"
              "    fcntl.flock(os.open(name, os.O_RDONLY), fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(120)")


def test_the_sweep_goes_by_the_writers_lock_not_the_pid_in_the_name(tmp_path: Path) -> None:
    """In a container every writer is PID 1, and across PID namespaces a live writer's PID may be no
    process here: a left-over is a dead writer's when its lock is free, whatever PID its name says."""
    target = tmp_path / "target"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid, live_pid = int(gone.stdout), os.getppid()
    locked = [tmp_path / f".target.staging-{dead_pid}-0", tmp_path / f".target.staging-{os.getpid()}-1",
              tmp_path / f".target.tmp-{dead_pid}-ab12"]
    free = [tmp_path / f".target.staging-{live_pid}-2", tmp_path / f".target.old-{live_pid}-3",
            tmp_path / f".target.tmp-{live_pid}-cd34"]
    for path in locked + free:
        if ".tmp-" in path.name:
            path.write_bytes(b"part")
        else:
            path.mkdir()
    (tmp_path / f".target.old-{live_pid}-3" / "trm_edge.json").write_text("{}")  # no target: it goes back
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, *map(str, locked)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        recover(target)
        assert _beside(target) == sorted(p.name for p in locked), _beside(target)
        assert (target / "trm_edge.json").is_file()  # the dead writer's old copy, put back
    finally:
        holder.kill()
        holder.wait()
    recover(target)  # the holder is gone: its left-overs go too
    assert _beside(target) == []


def test_a_live_writers_staging_folder_survives_another_writers_sweep(tmp_path: Path) -> None:
    from trm_edge.atomic import atomic_folder

    target = tmp_path / "target"
    with atomic_folder(target) as staging:
        (staging / "part").write_text("half built")
        other = _writer(["-c", f"from pathlib import Path; from trm_edge.atomic import recover; "
                               f"recover(Path({str(target)!r}))"], {})
        assert other.returncode == 0, other.stderr
        assert (staging / "part").is_file()
    assert (target / "part").is_file() and _beside(target) == []


def test_a_failed_validation_through_a_link_is_kept_beside_the_linked_folder(
    old_export: tuple[Path, Path, dict[str, bytes]], tmp_path: Path
) -> None:
    """NAME a link to another place (another disk, perhaps): the build is kept beside the folder it was
    built beside, so the move never crosses file systems."""
    new_model, _, old_files = old_export
    real = _copy_to(old_files, tmp_path / "disk" / "ex")
    (tmp_path / "links").mkdir()
    link = tmp_path / "links" / "ex"
    link.symlink_to(real)
    done = run_cli_in_process("export", str(new_model), "-o", str(link), "--validate-steps", "1", "--atol", "1e-12")
    kept = tmp_path / "disk" / "ex.failed-validation"
    assert done.returncode == 2 and f"kept for inspection at {kept}" in done.stderr, done.stderr
    assert read_metadata(kept, allow_failed_validation=True).source["checkpoint"] == "new.safetensors"
    assert sorted(os.listdir(tmp_path / "links")) == ["ex"] and _files(real) == old_files


def _kept_and_refused(kept: Path, target: Path, old_files: dict[str, bytes], message: str, what: str) -> None:
    """The failed build is kept, marked failed (the runtime refuses it), the old export is as it was."""
    assert f"kept for inspection at {kept}; the runtime refuses it; the export at {target} was left as it was" \
        in message and what in message and len(message.strip().splitlines()) == 1, message
    assert _files(target) == old_files and _beside(target) == []
    assert read_metadata(kept, allow_failed_validation=True).source["checkpoint"] == "new.safetensors"
    with pytest.raises(TrmEdgeError, match=f"failed a check when it was exported, so it cannot be trusted .*{what}"):
        read_metadata(kept)


def test_a_solve_graph_that_fails_its_check_is_kept_and_the_old_export_stays(
    old_export: tuple[Path, Path, dict[str, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trm_edge.app import solve_graph

    new_model, _, old_files = old_export
    monkeypatch.setattr(solve_graph, "_differences", lambda *args: ["answers differ (faked)"])
    target = _copy_to(old_files, tmp_path / "ex")
    done = run_cli_in_process("export", str(new_model), "-o", str(target), "--solve-graph", "--validate-steps", "1")
    assert done.returncode == 2, done.stderr
    _kept_and_refused(tmp_path / "ex.failed-validation", target, old_files, done.stderr, "answers differ")


def test_a_calibration_that_fails_after_the_export_keeps_the_build(
    old_export: tuple[Path, Path, dict[str, bytes]], tmp_path: Path
) -> None:
    from rich.console import Console

    from trm_edge.export import export
    from trm_edge.export.formats import OnnxOptions

    def calibration(export_dir: Path, console: Console) -> None:
        raise TrmEdgeError("no puzzle of the held-out set could be solved: check --data")

    new_model, _, old_files = old_export
    target = _copy_to(old_files, tmp_path / "ex")
    with pytest.raises(TrmEdgeError) as raised:
        export(new_model, target, onnx=OnnxOptions(validate_steps=1, finish=calibration))
    _kept_and_refused(tmp_path / "ex.failed-validation", target, old_files, str(raised.value), "no puzzle")


def test_an_engine_re_export_starts_from_the_replaced_exports_timing_cache(tmp_path: Path) -> None:
    """No GPU needed: the cache the previous export kept is in the staging folder before the build."""
    from trm_edge.atomic import atomic_folder
    from trm_edge.export.tensorrt_engine import carry_timing_cache

    name = "timing.trt10.8.0.sm87.cache"
    _copy_to({METADATA_FILE: b"{}", name: b"tactics timed before"}, tmp_path / "ex")
    with atomic_folder(tmp_path / "ex", marker=METADATA_FILE) as staging:
        carry_timing_cache(staging / name)
        assert (staging / name).read_bytes() == b"tactics timed before"
        carry_timing_cache(staging / "timing.trt10.8.0.sm90.cache")  # another GPU's: none to carry
    assert _files(tmp_path / "ex") == {name: b"tactics timed before"}


def test_a_calibration_or_engine_of_an_export_replaced_meanwhile_is_refused(
    old_export: tuple[Path, Path, dict[str, bytes]], tmp_path: Path
) -> None:
    """Minutes of calibrating or building read the old export; a re-export swapped in meanwhile must
    not get the old model's result (fresh hashes would make the mix look consistent)."""
    from trm_edge.contract.export_dir import write_engine_record
    from trm_edge.export import export
    from trm_edge.export.formats import OnnxOptions
    from trm_edge.runtime.calibrate import store

    new_model, _, old_files = old_export
    target = _copy_to(old_files, tmp_path / "ex")
    loaded = read_metadata(target)
    export(new_model, target, onnx=OnnxOptions(validate_steps=1))  # exported again meanwhile
    written = (target / METADATA_FILE).read_bytes()
    (target / "step.engine").write_bytes(b"an engine of the old model")
    with pytest.raises(TrmEdgeError, match=f"^the export at {target} changed while calibrating .*: run calibrate "
                                           "again$"):
        store(target, {"chosen": {"policy": "fixed:1"}}, "held_out.npz", loaded)
    with pytest.raises(TrmEdgeError, match="changed while building the engine .*: run build-engine again$"):
        write_engine_record(target, {"file": "step.engine", "graph": "step"}, loaded)
    assert (target / METADATA_FILE).read_bytes() == written
    recorded = write_engine_record(target, {"file": "step.engine", "graph": "step"}, read_metadata(target))
    assert "step.engine" in recorded.files  # the export it read: recorded


def test_a_file_hashed_right_after_it_changed_is_not_stamped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Coarse ctimes (kernels before ~6.13): a same-size rewrite a few ms after the hashing keeps the
    file's state, so the cache would vouch for the new bytes ("racy clean"). Hashed later: stamped."""
    import json

    from trm_edge.contract import export_dir

    def stamped(name: str) -> list[str]:
        record = {"sha256": export_dir.file_sha256(tmp_path / name)}
        export_dir._write_stamps(tmp_path, {name: record})
        return list(json.loads((tmp_path / VERIFIED_FILE).read_text()))

    (tmp_path / "step.onnx").write_bytes(b"graph")
    assert stamped("step.onnx") == []  # just written: hashed again at the next start-up
    (tmp_path / "init.onnx").write_bytes(b"graph")
    later = export_dir._clock() + export_dir.RACY_NS
    monkeypatch.setattr(export_dir, "_clock", lambda: later)
    assert stamped("init.onnx") == ["init.onnx"]


def test_an_engine_build_records_each_engine_and_starts_from_the_old_timing_cache(
    old_export: tuple[Path, Path, dict[str, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build_engine with TensorRT faked (no GPU here): in a staging folder it starts from the replaced
    export's timing cache, and each engine's record follows the one before (not 'changed meanwhile')."""
    import types

    from trm_edge.atomic import atomic_folder
    from trm_edge.export import tensorrt_engine
    from trm_edge.gpu_info import GpuInfo

    def build_one(trt, gpu, export_dir, meta, graph, profile, workspace, cache_path):  # type: ignore[no-untyped-def]
        assert cache_path.read_bytes() == b"tactics timed before"
        path = export_dir / tensorrt_engine.engine_name(graph, trt.__version__, gpu, meta.precision)
        path.write_bytes(graph.encode())
        return path

    monkeypatch.setattr(tensorrt_engine, "import_tensorrt", lambda: types.SimpleNamespace(__version__="10.8.0"))
    monkeypatch.setattr(tensorrt_engine, "require_gpu", lambda: GpuInfo("Orin", (8, 7)))
    monkeypatch.setattr(tensorrt_engine, "_build_one", build_one)
    _, _, old_files = old_export
    cache = "timing.trt10.8.0.sm87.cache"
    target = _copy_to({**old_files, cache: b"tactics timed before"}, tmp_path / "ex")
    with atomic_folder(target, marker=METADATA_FILE) as staging:
        _copy_to(old_files, staging)
        tensorrt_engine.build_engine(staging)
    assert {e["graph"] for e in read_metadata(target).engines} == {"init", "step"}


def test_an_engine_built_again_on_the_same_export_leaves_it_runnable(
    old_export: tuple[Path, Path, dict[str, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build-engine run twice on one export (a new --max-batch): the second build writes new bytes
    under the first's engine names; the export must record those, not refuse itself as damaged."""
    import types

    from trm_edge.export import tensorrt_engine
    from trm_edge.gpu_info import GpuInfo

    built = {"bytes": b""}  # what the next faked build writes

    def build_one(trt, gpu, export_dir, meta, graph, profile, workspace, cache_path):  # type: ignore[no-untyped-def]
        path = export_dir / tensorrt_engine.engine_name(graph, trt.__version__, gpu, meta.precision)
        path.write_bytes(graph.encode() + built["bytes"])
        return path

    monkeypatch.setattr(tensorrt_engine, "import_tensorrt", lambda: types.SimpleNamespace(__version__="10.8.0"))
    monkeypatch.setattr(tensorrt_engine, "require_gpu", lambda: GpuInfo("Orin", (8, 7)))
    monkeypatch.setattr(tensorrt_engine, "_build_one", build_one)
    _, _, old_files = old_export
    target = _copy_to(old_files, tmp_path / "ex")
    for content in (b"first", b"second"):
        built["bytes"] = content
        tensorrt_engine.build_engine(target)
    meta = read_metadata(target)  # every recorded file, the rebuilt engines included, belongs
    assert sorted(e["graph"] for e in meta.engines) == ["init", "step"]
    assert all((target / e["file"]).read_bytes().endswith(b"second") for e in meta.engines)
