"""The two graphs an export holds, as torch modules ready for the ONNX exporter.

- init.onnx: (tokens, puzzle_identifiers) -> x_emb, the input injection. It depends on the puzzle
  only, so the runtime computes it once per puzzle (when a slot is filled), not every step.
- step.onnx: (x_emb, z_H, z_L, reset) -> (z_H_next, z_L_next, logits, answer, q_halt, q_continue),
  one supervision step with every cycle unrolled. `reset` (B,) puts a slot's state back to the
  learned H_init/L_init inside the graph, so a runtime that keeps the state on the GPU refills a
  slot by flipping a flag rather than writing device memory from the host.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from trm_edge.model import RecursiveReasoningModel, State
from trm_edge.precisions import GRAPH_PRECISIONS, TABLE

# Each graph precision's torch dtype (trm_edge/precisions.py names them).
TORCH_DTYPES = {name: getattr(torch, TABLE[name].dtype) for name in GRAPH_PRECISIONS}


def cast_for_export(model: RecursiveReasoningModel, precision: str) -> RecursiveReasoningModel:
    """A copy of the model with weights and activations in `precision`; the Q head stays float32
    (halting compares a logit with a threshold, where half-precision rounding flips decisions).
    RMSNorm runs in float32 whatever the precision (see layers.rms_norm)."""
    dtype = TORCH_DTYPES[precision]
    low = copy.deepcopy(model).float().eval()
    low.to(dtype)
    low.q_head.float()
    return low


class InitGraph(nn.Module):
    def __init__(self, model: RecursiveReasoningModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, puzzle_identifiers: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.embed(tokens, puzzle_identifiers)


class StepGraph(nn.Module):
    def __init__(self, model: RecursiveReasoningModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, x_emb: torch.Tensor, z_H: torch.Tensor, z_L: torch.Tensor, reset: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        m = self.model
        fresh = reset.view(-1, 1, 1)
        z_H = torch.where(fresh, m.H_init.to(z_H.dtype), z_H)
        z_L = torch.where(fresh, m.L_init.to(z_L.dtype), z_L)
        state = m.recur(State(z_H, z_L), x_emb)
        logits = m.lm_head(state.z_H)[:, m.config.puzzle_emb_len :].float()
        answer = logits.argmax(-1).to(torch.int32)  # in float32: TensorRT's ArgMax takes no bf16
        q = m.q_head(state.z_H[:, 0].float())
        return state.z_H, state.z_L, logits, answer, q[:, 0], q[:, 1]


INIT_INPUTS = ("tokens", "puzzle_identifiers")
INIT_OUTPUTS = ("x_emb",)
STEP_INPUTS = ("x_emb", "z_H", "z_L", "reset")
STEP_OUTPUTS = ("z_H_next", "z_L_next", "logits", "answer", "q_halt", "q_continue")
