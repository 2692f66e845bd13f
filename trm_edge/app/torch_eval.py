"""The official evaluation loop in PyTorch eager: every puzzle runs exactly halt_max_steps steps.

This is the baseline `trm-edge bench --compare-torch` measures the runtime against (same weights,
same machine): what a user gets by running the official model code as it is.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from trm_edge.checkpoint import load_checkpoint
from trm_edge.runtime.labels import LabelledPuzzles, exact


def run_fixed_steps(
    checkpoint: str | Path,
    inputs: np.ndarray,
    puzzle_identifiers: np.ndarray,
    batch: int,
    steps: int | None = None,
    threads: int | None = None,
) -> tuple[np.ndarray, float, int]:
    """(answers (N, seq_len), wall seconds, steps) for all puzzles in batches of `batch`."""
    if threads:
        torch.set_num_threads(threads)
    model = load_checkpoint(checkpoint)
    steps = steps or model.config.halt_max_steps
    uses_ids = model.config.puzzle_emb_ndim > 0
    answers = np.zeros_like(inputs, dtype=np.int32)
    start = time.perf_counter()
    with torch.no_grad():
        for lo in range(0, len(inputs), batch):
            tokens = torch.from_numpy(inputs[lo : lo + batch].astype(np.int64))
            ids = torch.from_numpy(puzzle_identifiers[lo : lo + batch].astype(np.int64)) if uses_ids else None
            *_, last = model.run(tokens, ids, steps)  # the answer after the last step
            answers[lo : lo + batch] = last.logits.argmax(-1).numpy()
    return answers, time.perf_counter() - start, steps


def torch_baseline(
    checkpoint: str | Path, held_out: LabelledPuzzles, sizes: list[int], threads: int | None = None
) -> list[dict]:  # type: ignore[type-arg]
    """Per batch size: puzzles/s, time per step and accuracy of the official loop on `held_out`
    (after one warm-up batch)."""
    rows = []
    for size in sizes:
        run_fixed_steps(checkpoint, held_out.inputs[:size], held_out.puzzle_identifiers[:size], size, 1, threads)
        answers, seconds, steps = run_fixed_steps(
            checkpoint, held_out.inputs, held_out.puzzle_identifiers, size, threads=threads
        )
        batches = -(-len(held_out) // size)
        rows.append({
            "batch": size,
            "puzzles": len(held_out),
            "puzzles_per_s": round(len(held_out) / seconds, 2),
            "steps": steps,
            "step_ms": round(1e3 * seconds / (batches * steps), 3),
            "exact": float(exact(answers, held_out.labels).mean()) if held_out.labels is not None else None,
        })
    return rows


def torch_step_rate(
    checkpoint: str | Path, held_out: LabelledPuzzles, batch: int, timed_steps: int = 3, threads: int | None = None
) -> dict:  # type: ignore[type-arg]
    """The official loop's speed at `batch` from a few timed steps (after one warm-up step): every
    step of that loop costs the same, so puzzles/s = batch / (halt_max_steps x step time). For
    quick comparisons (the demo); `torch_baseline` runs the loop whole and scores its answers."""
    if threads:
        torch.set_num_threads(threads)
    model = load_checkpoint(checkpoint)
    steps = model.config.halt_max_steps
    take = np.resize(np.arange(len(held_out)), batch)  # repeat puzzles when there are fewer than a batch
    tokens = torch.from_numpy(held_out.inputs[take].astype(np.int64))
    ids = torch.from_numpy(held_out.puzzle_identifiers[take].astype(np.int64)) if model.config.puzzle_emb_ndim else None
    with torch.no_grad():
        state = model.initial_state(batch)
        state, *_ = model.step(state, tokens, ids)  # warm-up
        start = time.perf_counter()
        for _ in range(timed_steps):
            state, *_ = model.step(state, tokens, ids)
        step_s = (time.perf_counter() - start) / timed_steps
    return {"batch": batch, "puzzles": len(take), "puzzles_per_s": round(batch / (steps * step_s), 2), "steps": steps,
            "step_ms": round(1e3 * step_s, 3), "timed_steps": timed_steps, "exact": None}
