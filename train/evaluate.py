"""Evaluation in PyTorch during training: every puzzle runs halt_max_steps steps.

Reported, over the evaluated puzzles:
- exact_accuracy / cell_accuracy: of the answer after the last step (the official metric);
- halting_accuracy: how often the last step's halting head (q_halt > 0) is right about whether
  the answer is exact;
- halted_exact_accuracy / mean_steps: the answer and step count when each puzzle stops at the
  first step the model's own halting rule fires (what the runtime's default does).
"""

from __future__ import annotations

import numpy as np
import torch

from trm_edge.model import RecursiveReasoningModel
from trm_edge.train.dataset import Split


@torch.no_grad()
def predict(model: RecursiveReasoningModel, split: Split, batch_size: int, device: torch.device | str,
            steps: int | None = None) -> dict[str, np.ndarray]:
    """Per puzzle: answers after the last step, the model-halting answers and steps, and the last
    step's q_halt."""
    was_training = model.training
    model.eval()
    steps = steps or model.config.halt_max_steps
    n, seq = split.inputs.shape
    out = {
        "answers": np.zeros((n, seq), np.int64), "halted_answers": np.zeros((n, seq), np.int64),
        "halt_steps": np.zeros(n, np.int64), "q_halt": np.zeros(n, np.float32),
    }
    for lo in range(0, n, batch_size):
        inputs = torch.from_numpy(split.inputs[lo : lo + batch_size].astype(np.int64)).to(device)
        ids = torch.from_numpy(split.puzzle_identifiers[lo : lo + batch_size].astype(np.int64)).to(device)
        b = len(inputs)
        stopped = torch.zeros(b, dtype=torch.bool, device=device)
        halted_answers = torch.zeros(b, seq, dtype=torch.int64, device=device)
        halt_steps = torch.full((b,), steps, dtype=torch.int64, device=device)
        for s, (_, logits, q_halt, q_continue) in enumerate(model.run(inputs, ids, steps), start=1):
            answer = logits.argmax(-1)
            stop_now = ~stopped & (model.halted(q_halt, q_continue) | (s == steps))
            halted_answers[stop_now] = answer[stop_now]
            halt_steps[stop_now] = s
            stopped |= stop_now
        out["answers"][lo : lo + b] = answer.cpu().numpy()
        out["halted_answers"][lo : lo + b] = halted_answers.cpu().numpy()
        out["halt_steps"][lo : lo + b] = halt_steps.cpu().numpy()
        out["q_halt"][lo : lo + b] = q_halt.float().cpu().numpy()
    model.train(was_training)
    return out


def score(pred: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, float]:
    mask = labels != 0  # token 0 is padding
    right = (pred["answers"] == labels) & mask
    exact = right.sum(1) == mask.sum(1)
    halted_exact = (((pred["halted_answers"] == labels) | ~mask).all(1))
    return {
        "puzzles": float(len(labels)),
        "exact_accuracy": float(exact.mean()),
        "cell_accuracy": float(right.sum() / max(mask.sum(), 1)),
        "halting_accuracy": float(((pred["q_halt"] > 0) == exact).mean()),
        "halted_exact_accuracy": float(halted_exact.mean()),
        "mean_steps": float(pred["halt_steps"].mean()),
    }
