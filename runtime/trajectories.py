"""Trajectories: the same puzzle run again, its latent state nudged by seeded Gaussian noise.

A TRM's recursion is a search, and a version that wanders without verifying often verifies when
the same puzzle is run again from a slightly different latent state (Probabilistic TRM). A
trajectory is the puzzle in its own frame (or in a symmetry's frame: the kinds mix, versions.py)
whose state gets noise after each of its first `Noise.steps` steps. The noise is scaled to the
state it lands on (`scale` times the root mean square of each position's vector), so one scale
fits models whose state is normalised or not.

It is runtime work on the state arrays every backend exposes (`Backend.read_state` and
`write_state`): host arrays on ONNX Runtime CPU, OpenVINO, ExecuTorch and LiteRT; a copy through
the host on ONNX Runtime CUDA and TensorRT, once per nudged step of the nudged slots only. Each
trajectory draws from its own generator, seeded by (run seed, puzzle, version), so its answer does
not depend on what else shares the batch, and the same seed gives the same answers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.backends.base import Backend

# Chosen by measurement (benchmarks/trajectories.py; docs/versions.md has the figures and the curves).
DEFAULT_SCALE = 0.3
DEFAULT_NOISY_STEPS = 1


@dataclass(frozen=True)
class Noise:
    """How a trajectory is nudged: Gaussian noise of `scale` times the state's RMS, added after each
    of its first `steps` steps (0: after every step)."""

    scale: float = DEFAULT_SCALE
    steps: int = DEFAULT_NOISY_STEPS

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise TrmEdgeError(f"the noise scale must be a positive number, got {self.scale!r}")
        if self.steps < 0:
            raise TrmEdgeError(f"noisy steps must be 0 (every step) or more, got {self.steps!r}")


class Nudger:
    """One trajectory's noise: its own generator, drawn from in step order."""

    def __init__(self, seed: int | Sequence[int], noise: Noise) -> None:
        self.rng = np.random.default_rng(seed)
        self.noise = noise

    def due(self, step: int) -> bool:
        """Whether the state left by step `step` (1-based) gets noise."""
        return self.noise.steps == 0 or step <= self.noise.steps

    def nudged(self, state: np.ndarray) -> np.ndarray:
        """`state` (positions, hidden) plus noise scaled to each position's RMS."""
        rms = np.sqrt(np.mean(np.square(state), axis=-1, keepdims=True))
        return state + self.noise.scale * rms * self.rng.standard_normal(state.shape, dtype=np.float32)


def nudge(backend: Backend, rows: np.ndarray, nudgers: Sequence[Nudger]) -> None:
    """Noise on the latent state (z_H and z_L) of slots `rows`, one nudger each, on the backend's own state."""
    z_H, z_L = backend.read_state(rows)
    for i, nudger in enumerate(nudgers):
        z_H[i] = nudger.nudged(z_H[i])
        z_L[i] = nudger.nudged(z_L[i])
    backend.write_state(rows, z_H, z_L)
