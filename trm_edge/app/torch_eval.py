"""The official evaluation loop in PyTorch: every puzzle runs exactly halt_max_steps steps.

This is what `trm-edge bench --compare-torch` and the demo measure the runtime against (same
weights, same machine), as a PyTorch user would run it. Three peers, as MLPerf and `yolo
benchmark` compare formats: eager float32; eager with bf16 autocast, the one line a PyTorch user
adds on a CPU that runs bf16 natively (only there: elsewhere autocast emulates bf16 and is several
times slower); and torch.compile (at bf16 too where the CPU has it). Comparing against the fastest
of them keeps the runtime's per-step speed honest, apart from what halting saves.

Every caller times a peer's step one way (`interleaved_steps`, which `bench --compare-torch`, the
demo and benchmarks/step_peers.py share): the same threads as the runtime, one untimed step first
(which compiles a compiled peer for the shape), then the median of interleaved rounds, the
runtime's own step (runtime/bench.py's `full_slot_stepper`) timed in the same rounds, so that
their ratio is one figure wherever it is quoted.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trm_edge.checkpoint import load_checkpoint
from trm_edge.contract.held_out import LabelledPuzzles, exact
from trm_edge.hardware import cpu_has_native_bf16, usable_cores
from trm_edge.runtime.bench import interleaved_seconds, step_record


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
PEER_ROUNDS = 7  # interleaved rounds of one step each, per batch (benchmarks/step_peers.py --rounds)
RUNTIME = "trm-edge runtime"  # the runtime's step among the interleaved calls (no peer is named so)


def available_peers() -> list[Peer]:
    """The peers worth timing here: bf16 ones only where the CPU runs bf16 natively."""
    bf16 = cpu_has_native_bf16()
    return [p for p in PEERS.values() if bf16 or not p.bf16]


class PeerModel:
    """A checkpoint run as `peer` runs it: one call per supervision step."""

    def __init__(self, checkpoint: str | Path, peer: Peer, threads: int | None = None) -> None:
        torch.set_num_threads(peer_threads(threads))
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
    size = min(batch, len(inputs))
    runner.run(inputs[:size], puzzle_identifiers[:size], 1)  # warm-up (and compilation)
    start = time.perf_counter()
    answers = official_answers(runner, inputs, puzzle_identifiers, batch, steps)
    return answers, time.perf_counter() - start, steps


def official_answers(runner: PeerModel, inputs: np.ndarray, puzzle_identifiers: np.ndarray, batch: int, steps: int
                     ) -> np.ndarray:
    """The official loop's answers (N, seq_len): every puzzle `steps` steps, in batches of `batch`."""
    answers = np.zeros_like(inputs, dtype=np.int32)
    for lo in range(0, len(inputs), batch):
        chunk = slice(lo, lo + batch)
        tokens, ids = inputs[chunk], puzzle_identifiers[chunk]
        if len(tokens) < batch:  # a short last batch, padded: a compiled peer keeps its one shape
            pad = batch - len(tokens)
            tokens = np.concatenate([tokens, tokens[:1].repeat(pad, 0)])
            ids = np.concatenate([ids, ids[:1].repeat(pad)])
        answers[chunk] = runner.run(tokens, ids, steps)[: len(inputs[chunk])]
    return answers


def peer_threads(threads: int | None) -> int:
    """The threads a peer runs on: those the runtime was given, else every core this process may run
    on (the runtime's default; os.cpu_count() oversubscribes under taskset or a cpuset)."""
    return threads or len(usable_cores()) or 1


def peer_steppers(peers: dict[str, PeerModel], tokens: np.ndarray, ids: np.ndarray,
                  warming: Callable[[str], Any] | None = None) -> dict[str, Callable[[], None]]:
    """Per peer (by name), a call that runs one more step on these puzzles, after one untimed step
    that compiles a compiled peer for this shape (outside any timing). `warming(what)`, if given,
    is a context manager shown while each peer warms up (a spinner: compiling takes seconds)."""
    calls = {}
    for name, peer in peers.items():
        step = peer.stepper(tokens, ids)
        with warming(f"warming up {peer.peer.describe()} at batch {len(tokens)}") if warming else nullcontext():
            step()
        calls[name] = step
    return calls


def interleaved_steps(peers: dict[str, PeerModel], tokens: np.ndarray, ids: np.ndarray, rounds: int = PEER_ROUNDS,
                      warming: Callable[[str], Any] | None = None,
                      runtime: Mapping[str, Callable[[], object]] | None = None) -> dict[str, list[float]]:
    """Seconds of each engine's steps with every slot full of `tokens`, over `rounds` interleaved
    rounds: the runtime's (`runtime`, name -> runtime/bench.py's `full_slot_stepper`, which has run
    its untimed step) and each peer's (`peer_steppers`). The one timing bench --compare-torch, the
    demo and benchmarks/step_peers.py share: every step follows another engine's, none has a
    warm-up step of its own, so a ratio of two of them is the same figure in all three."""
    calls: dict[str, Callable[[], object]] = dict(runtime or {})
    calls.update(peer_steppers(peers, tokens, ids, warming))
    return interleaved_seconds(calls, rounds)


def torch_baseline(
    checkpoint: str | Path, held_out: LabelledPuzzles, sizes: list[int], threads: int | None = None,
    peers: list[str] | None = None, rounds: int = PEER_ROUNDS, warming: Callable[[str], Any] | None = None,
    runtime: Callable[[int], Callable[[], object]] | None = None,
) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """Per peer and batch size: the step with every slot full (`interleaved_steps`), the official
    loop's puzzles/s from it (every one of its steps costs the same: batch / (halt_max_steps x
    step)), and, where `held_out` has labels, the official loop's exact share (every puzzle run
    halt_max_steps steps, at the largest size: the answers do not depend on the batch). With
    `runtime` (size -> the runtime's `full_slot_stepper` at that size, on the same puzzles), also
    the runtime's step at each size, timed in the same rounds (runtime/bench.py's `step_record`).
    (rows, {size: runtime step record}; empty without `runtime`)."""
    names = peers or [p.name for p in available_peers()]
    models = {name: PeerModel(checkpoint, PEERS[name], threads) for name in names}
    step_s: dict[tuple[str, int], float] = {}
    runtime_steps: dict[int, dict[str, Any]] = {}
    for size in sizes:
        take = np.resize(np.arange(len(held_out)), size)  # repeat puzzles when there are fewer than a batch
        ours = {RUNTIME: runtime(size)} if runtime is not None else None
        timed = interleaved_steps(models, held_out.inputs[take], held_out.puzzle_identifiers[take], rounds, warming,
                                  ours)
        if RUNTIME in timed:
            runtime_steps[size] = step_record(timed.pop(RUNTIME), size)
        step_s.update({(name, size): statistics.median(seconds) for name, seconds in timed.items()})
    rows = []
    for name, runner in models.items():
        steps = runner.config.halt_max_steps
        scored = None
        if held_out.labels is not None:
            answers = official_answers(runner, held_out.inputs, held_out.puzzle_identifiers, max(sizes), steps)
            scored = float(exact(answers, held_out.labels).mean())
        for size in sizes:
            seconds = step_s[name, size]
            rows.append({"peer": name, "engine": PEERS[name].describe(), "batch": size, "puzzles": len(held_out),
                         "threads": peer_threads(threads), "timed_rounds": rounds, "step_ms": round(1e3 * seconds, 3),
                         "steps": steps, "puzzles_per_s": round(size / (steps * seconds), 2), "exact": scored})
    return rows, runtime_steps


def torch_step_rate(
    checkpoint: str | Path, held_out: LabelledPuzzles, batch: int, timed_steps: int = 3, threads: int | None = None,
    peers: list[str] | None = None, runtime: Callable[[int], Callable[[], object]] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The peers (default eager) at one batch from `timed_steps` interleaved rounds (`torch_baseline`
    without the answers), with the runtime's step (`runtime` as there) in the same rounds: for quick
    comparisons (the demo). (rows, the runtime's step record or None)."""
    rows, ours = torch_baseline(checkpoint, replace(held_out, labels=None), [batch], threads, peers or ["eager"],
                                timed_steps, runtime=runtime)
    return [row | {"puzzles": batch, "timed_steps": timed_steps} for row in rows], ours.get(batch)


def fastest_peer(rows: list[dict[str, Any]], batch: int) -> dict[str, Any] | None:
    """The row of the fastest peer at `batch` (lowest step time)."""
    at = [r for r in rows if r["batch"] == batch]
    return min(at, key=lambda r: r["step_ms"]) if at else None
