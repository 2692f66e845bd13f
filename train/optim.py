"""Optimisers and the learning-rate schedule of the recipes.

- AdamW (torch's) for the network, or AdamATan2: Adam whose update is atan2(m, sqrt(v)), bounded
  and free of epsilon. The paper's recipes were tuned with AdamATan2 (lr 1e-4, weight decay 1.0 on
  Sudoku and Maze); with AdamW the same numbers give a different effective step, so those recipes
  name it. Small CPU recipes use AdamW.
- Sign-SGD on the rows of the puzzle-embedding table that a batch touched: the table can hold a
  million rows (one per augmented ARC task), so it gets neither dense gradients nor Adam moments.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

from trm_edge.errors import TrmEdgeError

# AdamATan2's constants: the update is a * atan2(m_hat, b * sqrt(v_hat)); a = 1.27 makes its
# typical magnitude match Adam's.
ATAN2_A = 1.27
ATAN2_B = 1.0


class AdamATan2(torch.optim.Optimizer):
    def __init__(
        self,
        params,  # type: ignore[no-untyped-def]
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.95),
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[no-untyped-def]
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = float(state["step"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(p.grad, 1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                p.mul_(1 - lr * wd)
                m_hat = m / (1 - beta1**t)
                v_hat = v / (1 - beta2**t)
                p.add_(torch.atan2(m_hat, ATAN2_B * v_hat.sqrt()), alpha=-lr * ATAN2_A)
        return None


def build_optimizer(name: str, params: list[torch.nn.Parameter], lr: float, betas: tuple[float, float],
                    weight_decay: float) -> torch.optim.Optimizer:
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, foreach=False)
    if name == "adam_atan2":
        return AdamATan2(params, lr=lr, betas=betas, weight_decay=weight_decay)
    raise TrmEdgeError(f"unknown optimizer {name!r}: use adamw or adam_atan2")


def lr_at(step: int, base: float, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up from 0 over `warmup` steps, then cosine decay to base * min_ratio at `total`."""
    if step < warmup:
        return base * step / max(1, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def sign_sgd_rows(table: torch.Tensor, ids: torch.Tensor, grads: torch.Tensor, lr: float, weight_decay: float) -> None:
    """Update the rows `ids` of `table` with decoupled weight decay and the sign of their summed
    gradient; under torch.distributed the rows and gradients of every rank are gathered first, so
    every replica applies the same update."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        world = dist.get_world_size()
        all_ids = [torch.empty_like(ids) for _ in range(world)]
        all_grads = [torch.empty_like(grads) for _ in range(world)]
        dist.all_gather(all_ids, ids.contiguous())
        dist.all_gather(all_grads, grads.contiguous())
        ids, grads = torch.cat(all_ids), torch.cat(all_grads)
    unique, inverse = torch.unique(ids, return_inverse=True)
    summed = torch.zeros(len(unique), grads.shape[-1], dtype=grads.dtype, device=grads.device)
    summed.index_add_(0, inverse, grads)
    rows = table[unique]
    table[unique] = rows * (1 - lr * weight_decay) - lr * torch.sign(summed).to(table.dtype)
