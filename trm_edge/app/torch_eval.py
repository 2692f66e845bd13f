"""The official evaluation loop in PyTorch: every puzzle runs exactly halt_max_steps steps.

This is what `trm-edge bench --compare-torch` and the demo measure the runtime against (same
weights, same machine), as a PyTorch user would run it. Three peers, as MLPerf and `yolo
benchmark` compare formats: eager float32; eager with bf16 autocast, the one line a PyTorch user
adds on a CPU that runs bf16 natively (only there: elsewhere autocast emulates bf16 and is several
times slower); and torch.compile (at bf16 too where the CPU has it). Comparing against the fastest
of them keeps the runtime's per-step speed honest, apart from what halting saves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trm_edge.checkpoint import load_checkpoint
from trm_edge.contract.held_out import LabelledPuzzles, exact
from trm_edge.hardware import cpu_has_native_bf16


@dataclass(frozen=True)
class Peer:
    name: str  # "eager", "eager-bf16", "compile", "compile-bf16"
    compiled: bool
    bf16: bool

    def describe(self) -> str:
        how = "torch.compile" if self.compiled else "PyTorch eager"
        return f"{how} {'bf16 autocast' if self.bf16 else 'fp32'}"


PEERS = {p.name: p for p in (Peer("eager", False, False), Peer("eager-bf16", False, True),
                             Peer("compile", True, False), Peer("compile-bf16", True, True))}


def available_peers() -> list[Peer]:
    """The peers worth timing here: bf16 ones only where the CPU runs bf16 natively."""
    bf16 = cpu_has_native_bf16()
    return [p for p in PEERS.values() if bf16 or not p.bf16]


class PeerModel:
    """A checkpoint run as `peer` runs it: one call per supervision step."""

    def __init__(self, checkpoint: str | Path, peer: Peer, threads: int | None = None) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.peer = peer
        self.model = load_checkpoint(checkpoint).eval()
        self.config = self.model.config
        self.uses_ids = self.config.puzzle_emb_ndim > 0
        step: Callable[..., Any] = self.model.step
        self._step = torch.compile(step, dynamic=False) if peer.compiled else step

    def _context(self) -> Any:
        return torch.autocast("cpu", dtype=torch.bfloat16) if self.peer.bf16 else nullcontext()

    def run(self, tokens: np.ndarray, ids: np.ndarray, steps: int) -> np.ndarray:
        """Answers after `steps` steps from the initial state."""
        t = torch.from_numpy(tokens.astype(np.int64))
        i = torch.from_numpy(ids.astype(np.int64)) if self.uses_ids else None
        with torch.no_grad(), self._context():
            state = self.model.initial_state(len(tokens))
            for _ in range(steps):
                state, logits, *_ = self._step(state, t, i)
        return logits.float().argmax(-1).numpy()

    def stepper(self, tokens: np.ndarray, ids: np.ndarray) -> Callable[[], None]:
        """A call that runs one more step on these puzzles (from the initial state first), for
        benchmarks that interleave engines step by step."""
        t = torch.from_numpy(tokens.astype(np.int64))
        i = torch.from_numpy(ids.astype(np.int64)) if self.uses_ids else None
        state = [self.model.initial_state(len(tokens))]

        def one() -> None:
            with torch.no_grad(), self._context():
                state[0] = self._step(state[0], t, i).state

        return one

    def step_seconds(self, tokens: np.ndarray, ids: np.ndarray, timed_steps: int) -> float:
        """Wall seconds of one step at this batch (after a warm-up step, which compiles)."""
        t = torch.from_numpy(tokens.astype(np.int64))
        i = torch.from_numpy(ids.astype(np.int64)) if self.uses_ids else None
        with torch.no_grad(), self._context():
            state = self.model.initial_state(len(tokens))
            state, *_ = self._step(state, t, i)
            start = time.perf_counter()
            for _ in range(timed_steps):
                state, *_ = self._step(state, t, i)
        return (time.perf_counter() - start) / timed_steps


def run_fixed_steps(
    checkpoint: str | Path,
    inputs: np.ndarray,
    puzzle_identifiers: np.ndarray,
    batch: int,
    steps: int | None = None,
    threads: int | None = None,
    peer: str = "eager",
) -> tuple[np.ndarray, float, int]:
    """(answers (N, seq_len), wall seconds, steps) for all puzzles in batches of `batch` (after one
    untimed batch, which compiles a compiled peer)."""
    runner = PeerModel(checkpoint, PEERS[peer], threads)
    steps = steps or runner.config.halt_max_steps
    answers = np.zeros_like(inputs, dtype=np.int32)
    size = min(batch, len(inputs))
    runner.run(inputs[:size], puzzle_identifiers[:size], 1)  # warm-up (and compilation)
    start = time.perf_counter()
    for lo in range(0, len(inputs), batch):
        chunk = slice(lo, lo + batch)
        tokens, ids = inputs[chunk], puzzle_identifiers[chunk]
        if len(tokens) < batch:  # a short last batch, padded: a compiled peer keeps its one shape
            pad = batch - len(tokens)
            tokens = np.concatenate([tokens, tokens[:1].repeat(pad, 0)])
            ids = np.concatenate([ids, ids[:1].repeat(pad)])
        answers[chunk] = runner.run(tokens, ids, steps)[: len(inputs[chunk])]
    return answers, time.perf_counter() - start, steps


def torch_baseline(
    checkpoint: str | Path, held_out: LabelledPuzzles, sizes: list[int], threads: int | None = None,
    peers: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Per peer and batch size: puzzles/s, time per step and accuracy of the official loop on
    `held_out` (each peer warmed up first)."""
    rows = []
    for name in peers or [p.name for p in available_peers()]:
        for size in sizes:
            answers, seconds, steps = run_fixed_steps(
                checkpoint, held_out.inputs, held_out.puzzle_identifiers, size, threads=threads, peer=name
            )
            batches = -(-len(held_out) // size)
            rows.append({
                "peer": name,
                "engine": PEERS[name].describe(),
                "batch": size,
                "puzzles": len(held_out),
                "puzzles_per_s": round(len(held_out) / seconds, 2),
                "steps": steps,
                "step_ms": round(1e3 * seconds / (batches * steps), 3),
                "exact": float(exact(answers, held_out.labels).mean()) if held_out.labels is not None else None,
            })
    return rows


def torch_step_rate(
    checkpoint: str | Path, held_out: LabelledPuzzles, batch: int, timed_steps: int = 3, threads: int | None = None,
    peer: str = "eager",
) -> dict[str, Any]:
    """The official loop's speed at `batch` from a few timed steps (after one warm-up step): every
    step of that loop costs the same, so puzzles/s = batch / (halt_max_steps x step time). For
    quick comparisons (the demo); `torch_baseline` runs the loop whole and scores its answers."""
    runner = PeerModel(checkpoint, PEERS[peer], threads)
    steps = runner.config.halt_max_steps
    take = np.resize(np.arange(len(held_out)), batch)  # repeat puzzles when there are fewer than a batch
    step_s = runner.step_seconds(held_out.inputs[take], held_out.puzzle_identifiers[take], timed_steps)
    return {"peer": peer, "engine": PEERS[peer].describe(), "batch": batch, "puzzles": len(take),
            "puzzles_per_s": round(batch / (steps * step_s), 2), "steps": steps, "step_ms": round(1e3 * step_s, 3),
            "timed_steps": timed_steps, "exact": None}


def fastest_peer(rows: list[dict[str, Any]], batch: int) -> dict[str, Any] | None:
    """The row of the fastest peer at `batch` (lowest step time)."""
    at = [r for r in rows if r["batch"] == batch]
    return min(at, key=lambda r: r["step_ms"]) if at else None
