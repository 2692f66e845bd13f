"""Trajectories: noise on one slot's latent state, on every backend; seeded, so answers repeat."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.backends.tensorrt import bf16_to_float32, float32_to_bf16
from trm_edge.runtime.slots import SlotWork
from trm_edge.runtime.solver import Solver
from trm_edge.runtime.trajectories import Noise, Nudger
from trm_edge.runtime.versions import VersionedRun

from conftest import CPU_BACKENDS, GPU, HAS_TENSORRT, TRAINED


@pytest.fixture(scope="module")
def sudokus() -> tuple[np.ndarray, np.ndarray]:
    data = np.load(TRAINED / "test_300.npz")
    return (data["puzzles"] + 1).astype(np.int32), (data["solutions"] + 1).astype(np.int32)


def _why_not(backend: str) -> str | None:
    if backend == "ort-cuda":
        from trm_edge.runtime.backends.onnxruntime import unusable

        return unusable("ort-cuda")
    if backend == "tensorrt":
        if GPU is None:
            return "needs an NVIDIA GPU"
        return None if HAS_TENSORRT else "needs the tensorrt Python package (not installable on this CI)"
    return None


@pytest.fixture
def export_for(trained_export: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The trained export as `backend` runs it (TensorRT: a copy with engines built for this GPU)."""

    def make(backend: str) -> Path:
        why = _why_not(backend)
        if why is not None:
            pytest.skip(f"{backend}: {why}")
        if backend != "tensorrt":
            return trained_export
        from trm_edge.export.tensorrt_engine import BatchProfile, build_engine

        copy = tmp_path / "engine_export"
        shutil.copytree(trained_export, copy)
        build_engine(copy, BatchProfile(1, 2, 4), workspace_gib=1.0)
        return copy

    return make


@pytest.mark.parametrize("backend", [*CPU_BACKENDS, "ort-cuda", "tensorrt"])
def test_noise_lands_on_its_own_slot_only(backend: str, export_for, sudokus: tuple[np.ndarray, np.ndarray]) -> None:  # type: ignore[no-untyped-def]
    """Two slots hold the same puzzle, one of them nudged: the plain one answers exactly as it does
    alone, the nudged one runs another path; the state a backend hands out is the state it runs."""
    directory = export_for(backend)
    puzzle = sudokus[0][0]
    solver = Solver.load(directory, backend=backend, precision="fp32", halt="fixed:5", slots=2)
    alone = solver.solve_encoded([(puzzle, 0), (puzzle, 0)])
    work = [SlotWork(puzzle, 0), SlotWork(puzzle, 0, Nudger(7, Noise(scale=0.5, steps=0)))]
    plain, nudged = sorted(solver.run_source(iter(work), known_count=2), key=lambda r: r.index)
    assert np.array_equal(plain.answer, alone[0].answer) and plain.halt_logit == alone[0].halt_logit
    assert nudged.halt_logit != plain.halt_logit  # the noise reached the state the next steps read

    backend_ = solver.backend
    z_H, z_L = backend_.read_state(np.array([1]))
    assert z_H.dtype == np.float32 and z_H.shape == (1, solver.meta.model.state_len, solver.meta.model.hidden_size)
    backend_.write_state(np.array([1]), z_H + 1.0, z_L)
    again_H, again_L = backend_.read_state(np.array([0, 1]))
    np.testing.assert_allclose(again_H[1], z_H[0] + 1.0, rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(again_L[1], z_L[0])


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_trajectories_repeat_for_a_seed_and_stay_within_the_budget(
    backend: str, trained_export: Path, sudokus: tuple[np.ndarray, np.ndarray]
) -> None:
    puzzles, solutions = sudokus[0][:24], sudokus[1][:24]
    solver = Solver.load(trained_export, backend=backend, precision="fp32", slots=16)
    plain = solver.solve(list(puzzles))

    def run(seed: int, kind: str) -> list:  # type: ignore[type-arg]
        return VersionedRun(solver, seed=seed, budget=40, kind=kind, noise=Noise(0.5)).solve([(p, 0) for p in puzzles])

    first, second, other = run(3, "trajectories"), run(3, "trajectories"), run(4, "trajectories")

    def trace(results: list) -> list:  # type: ignore[type-arg]
        return [(r.version, r.version_steps, r.answer.tobytes()) for r in results]

    assert trace(first) == trace(second)
    assert any(r.versions_run > 1 for r in first)  # some puzzle ran trajectories
    assert trace(other) != trace(first)  # and another seed nudges them otherwise
    assert all(r.version_steps <= 40 for r in first)
    assert all((r.answer == s).all() for r, s in zip(first, solutions, strict=True) if r.verified)
    # An easy puzzle pays what it pays without versions: its plain version verifies, nothing more runs.
    for r, p in zip(first, plain, strict=True):
        if p.verified:
            assert r.version == 0 and r.version_steps == p.steps and not r.nudged
    both = run(3, "both")
    later = [r for r in both if r.version > 0]
    assert later and all(r.nudged for r in later)


def test_noise_and_budget_errors_say_what_is_wrong(trained_export: Path) -> None:
    solver = Solver.load(trained_export, backend="ort-cpu")
    with pytest.raises(TrmEdgeError, match="noise scale must be a positive number"):
        Noise(scale=0.0)
    with pytest.raises(TrmEdgeError, match="noisy steps must be 0"):
        Noise(steps=-1)
    with pytest.raises(TrmEdgeError, match="kind of versions is one of"):
        VersionedRun(solver, budget=64, kind="noise")
    with pytest.raises(TrmEdgeError, match="give versions .* or budget"):
        VersionedRun(solver)
    with pytest.raises(TrmEdgeError, match="less than one whole version"):
        VersionedRun(solver, budget=solver.max_steps - 1)
    with pytest.raises(TrmEdgeError, match="symmetries are not nudged"):
        VersionedRun(solver, budget=64, kind="symmetries", noise=Noise(0.5))


def test_bf16_state_bits_round_to_nearest_even() -> None:
    """TensorRT may keep a bf16 state: the host side of a nudge converts through these."""
    values = np.array([1.0, -2.5, 3.14159, 1e-3, 65504.0], np.float32)
    back = bf16_to_float32(float32_to_bf16(values))
    np.testing.assert_allclose(back, values, rtol=2 ** -8)
    halfway = np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8], np.float32)  # ties: to the even mantissa
    np.testing.assert_array_equal(bf16_to_float32(float32_to_bf16(halfway)), [1.0, 1 + 2 ** -6])


def test_auto_spends_the_symmetries_first_then_nudges_them() -> None:
    """A maze has 8 symmetries: auto asks them plain, then again nudged; symmetries alone stop at 8.
    (The scheduling alone, on a solver's settings: the nudged runs themselves are tested above.)"""
    from types import SimpleNamespace

    from trm_edge.contract.halting_policy import parse_policy
    from trm_edge.runtime.versions import _Puzzle
    from trm_edge.tasks.maze import MazeCodec

    codec = MazeCodec(10)
    solver = SimpleNamespace(codec=codec, verifier=codec, policy=parse_policy("verified"), slots=4, max_steps=16)
    run = VersionedRun(solver, budget=512, kind="auto")  # type: ignore[arg-type]
    frames = [run.symmetry(v) for v in range(12)]
    assert [run.nudged(v) for v in range(12)] == [False] * 8 + [True] * 4
    assert repr(frames[8]) == repr(frames[0]) and len({repr(f) for f in frames}) == 8
    asked_eight = _Puzzle(np.zeros(100, np.int32), 0, issued=8)
    assert run._room_for_another(asked_eight)
    assert not VersionedRun(solver, budget=512, kind="symmetries")._room_for_another(asked_eight)  # type: ignore[arg-type]
