"""Per-step training losses: the answer's cross-entropy and the halting head's targets.

Conventions follow the official TRM/HRM losses, so the paper's hyper-parameters mean the same
here: per-sequence token losses are averaged over the sequence's labelled cells and summed over
the batch; the trainer divides by the global batch size.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

IGNORE = -100  # label value of cells that carry no loss (padding)


def _stablemax_scores(x: torch.Tensor) -> torch.Tensor:
    # s(x) = x + 1 for x >= 0 and 1 / (1 - x) below: positive like exp, but only linear growth,
    # which keeps very confident logits from overflowing in low precision (the paper's "stablemax").
    # Each branch only sees its own side, so the unused one never yields inf (and inf * 0 = nan
    # gradients) at x = 1, which bf16 logits hit exactly.
    return torch.where(x < 0, 1 / (1 - x.clamp(max=0)), x.clamp(min=0) + 1)


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-cell loss (..., ) of logits (..., vocab) against labels, 0 where label == IGNORE.

    Computed in float64 as the official code does: the scores' sum is not bounded like softmax's."""
    scores = _stablemax_scores(logits.to(torch.float64))
    log_probs = torch.log(scores / scores.sum(dim=-1, keepdim=True))
    valid = labels != IGNORE
    picked = torch.gather(log_probs, -1, torch.where(valid, labels, 0).long().unsqueeze(-1)).squeeze(-1)
    return torch.where(valid, -picked, 0.0).float()


def softmax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-cell softmax cross-entropy, 0 where label == IGNORE."""
    flat = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), labels.long().reshape(-1), ignore_index=IGNORE, reduction="none"
    )
    return flat.view(labels.shape)


CROSS_ENTROPY = {"stablemax": stablemax_cross_entropy, "softmax": softmax_cross_entropy}


class AnswerStats(NamedTuple):
    """How one step's answers compare with the labels, per sequence."""

    labelled: torch.Tensor  # (B,) cells with a label
    correct_cells: torch.Tensor  # (B,)
    exact: torch.Tensor  # (B,) bool: every labelled cell right


def answer_stats(logits: torch.Tensor, labels: torch.Tensor) -> AnswerStats:
    with torch.no_grad():
        valid = labels != IGNORE
        correct = valid & (logits.argmax(-1) == labels)
        labelled = valid.sum(-1)
        correct_cells = correct.sum(-1)
        return AnswerStats(labelled, correct_cells, correct_cells == labelled)


def answer_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str) -> torch.Tensor:
    """Sum over the batch of each sequence's mean cell loss."""
    per_cell = CROSS_ENTROPY[kind](logits, labels)
    labelled = (labels != IGNORE).sum(-1).clamp_min(1)
    return (per_cell.sum(-1) / labelled).sum()


def halt_loss(q_halt: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """TRM's halting target: q_halt predicts, as a logit, whether the answer is already right."""
    return F.binary_cross_entropy_with_logits(q_halt.float(), exact.float(), reduction="sum")


def continue_loss(q_continue: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """HRM's Q-learning term: q_continue regresses (as a logit) onto the bootstrapped value `target`."""
    return F.binary_cross_entropy_with_logits(q_continue.float(), target.float(), reduction="sum")


def q_continue_target(
    next_q_halt: torch.Tensor, next_q_continue: torch.Tensor, is_last_step: torch.Tensor
) -> torch.Tensor:
    """HRM's bootstrap: the value of continuing is the best of the next step's two choices,
    except at the step limit, where only halting remains."""
    best_next = torch.where(is_last_step, next_q_halt, torch.maximum(next_q_halt, next_q_continue))
    return torch.sigmoid(best_next.float())
