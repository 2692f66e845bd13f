"""TRM and HRM: one supervision step as a plain function of (state, puzzle).

A step refines two latent states of shape (batch, puzzle_emb_len + seq_len, hidden):
z_L, the reasoning scratchpad, and z_H, the embedded answer.

    repeat H_cycles times:
        repeat L_cycles times:  z_L = L_net(z_L, z_H + x)
        z_H = H_net(z_H, z_L)          # TRM: H_net is the same net as L_net

then reads the answer logits off z_H and the halting logits off z_H's first position.
The step has static shapes and no data-dependent control flow, so it exports as it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from trm_edge.config import ModelConfig
from trm_edge.errors import TrmEdgeError
from trm_edge.layers import Linear, ReasoningNet, rope_tables

# The learned positions are averaged with the token embedding; the official code uses this constant.
LEARNED_POS_SCALE = 0.707106781


class State(NamedTuple):
    """The recursion's carry between supervision steps."""

    z_H: torch.Tensor
    z_L: torch.Tensor


class StepOutput(NamedTuple):
    state: State
    logits: torch.Tensor  # (B, seq_len, vocab)
    q_halt: torch.Tensor  # (B,) float32
    q_continue: torch.Tensor  # (B,) float32


class RecursiveReasoningModel(nn.Module):
    """A TRM (`config.arch == "trm"`) or HRM (`"hrm"`)."""

    H_init: torch.Tensor  # buffers, declared for the type checker (nn.Module resolves them at run time)
    L_init: torch.Tensor
    info: dict[str, Any]  # provenance (recipe, source files, puzzle names) that travels with the model

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.info = {}
        c = config
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        if c.puzzle_emb_ndim > 0:
            self.puzzle_emb = nn.Embedding(c.num_puzzle_identifiers, c.puzzle_emb_ndim)
        if c.pos_encodings == "learned":
            self.embed_pos = nn.Embedding(c.total_len, c.hidden_size)
        if c.pos_encodings == "rope" and not c.mlp_t:
            cos, sin = rope_tables(c.head_dim, c.total_len, c.rope_theta)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.L_net = ReasoningNet(c, c.L_layers)
        if c.arch == "hrm":
            self.H_net = ReasoningNet(c, c.H_layers)
        self.lm_head = Linear(c.hidden_size, c.vocab_size, bias=False)
        self.q_head = Linear(c.hidden_size, 2, bias=True)
        self.register_buffer("H_init", torch.zeros(c.hidden_size))
        self.register_buffer("L_init", torch.zeros(c.hidden_size))
        self.reset_parameters()

    # --- initialisation (training from scratch; checkpoints overwrite all of it) --------------
    @torch.no_grad()
    def reset_parameters(self) -> None:
        """LeCun-normal weights truncated at 2 std, as the official code initialises them;
        a zero Q head with bias -5 (halting starts 'continue'); zero puzzle embeddings."""
        embed_std = 1.0 / math.sqrt(self.config.hidden_size)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                _trunc_normal(module.weight, 1.0 / math.sqrt(module.in_features))
                if module.bias is not None:
                    module.bias.zero_()
        _trunc_normal(self.embed_tokens.weight, embed_std)
        if hasattr(self, "embed_pos"):
            _trunc_normal(self.embed_pos.weight, embed_std)
        if hasattr(self, "puzzle_emb"):
            self.puzzle_emb.weight.zero_()
        self.q_head.weight.zero_()
        self.q_head.bias.fill_(-5.0)
        _trunc_normal(self.H_init, 1.0)
        _trunc_normal(self.L_init, 1.0)

    # --- the step, in three parts that export can also use separately -----------------------
    @property
    def compute_dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """z_H and z_L set to the learned H_init and L_init at every position."""
        shape = (batch_size, self.config.total_len, self.config.hidden_size)
        device = device if device is not None else self.H_init.device
        dtype = self.compute_dtype
        return State(
            self.H_init.to(device=device, dtype=dtype).expand(shape).clone(),
            self.L_init.to(device=device, dtype=dtype).expand(shape).clone(),
        )

    def embed(
        self,
        inputs: torch.Tensor,
        puzzle_identifiers: torch.Tensor | None = None,
        puzzle_rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The input injection x (B, total_len, hidden): it depends on the puzzle only, so a
        caller looping steps on the same puzzles can compute it once.

        `puzzle_rows` (B, puzzle_emb_ndim) replaces the lookup of `puzzle_identifiers`: the trainer
        passes the looked-up rows as a leaf so it can update only those rows of a large table."""
        c = self.config
        dtype = self.compute_dtype
        x = F.embedding(inputs.long(), self.embed_tokens.weight.to(dtype))
        if c.puzzle_emb_ndim > 0:
            if puzzle_rows is not None:
                prefix = puzzle_rows.to(dtype)
            elif puzzle_identifiers is None:
                raise TrmEdgeError("this model has a puzzle embedding: pass puzzle_identifiers (B,)")
            else:
                prefix = F.embedding(puzzle_identifiers.long(), self.puzzle_emb.weight.to(dtype))
            pad = c.puzzle_emb_len * c.hidden_size - c.puzzle_emb_ndim
            if pad > 0:
                prefix = F.pad(prefix, (0, pad))
            x = torch.cat((prefix.view(-1, c.puzzle_emb_len, c.hidden_size), x), dim=1)
        if c.pos_encodings == "learned":
            x = LEARNED_POS_SCALE * (x + self.embed_pos.weight.to(dtype))
        return math.sqrt(c.hidden_size) * x

    def recur(self, state: State, x: torch.Tensor) -> State:
        """One supervision step's cycles. In training only the last cycle carries gradients
        (TRM: the last L cycles and H update; HRM: the last L and H updates)."""
        c = self.config
        rope = (self.rope_cos, self.rope_sin) if hasattr(self, "rope_cos") else None
        h_net = self.H_net if c.arch == "hrm" else self.L_net
        updates = c.H_cycles * (c.L_cycles + 1)
        with_grad = (c.L_cycles + 1) if c.arch == "trm" else 2
        z_H, z_L = state
        grad_on = torch.is_grad_enabled()
        n = 0
        for _ in range(c.H_cycles):
            for _ in range(c.L_cycles):
                with torch.set_grad_enabled(grad_on and n >= updates - with_grad):
                    z_L = self.L_net(z_L, z_H + x, rope)
                n += 1
            with torch.set_grad_enabled(grad_on and n >= updates - with_grad):
                z_H = h_net(z_H, z_L, rope)
            n += 1
        return State(z_H, z_L)

    def readout(self, z_H: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Answer logits for the puzzle positions, and halt/continue logits from position 0."""
        logits = self.lm_head(z_H)[:, self.config.puzzle_emb_len :]
        q = self.q_head(z_H[:, 0]).float()
        return logits, q[:, 0], q[:, 1]

    def step(
        self,
        state: State,
        inputs: torch.Tensor,
        puzzle_identifiers: torch.Tensor | None = None,
        puzzle_rows: torch.Tensor | None = None,
    ) -> StepOutput:
        """One supervision step: (state, puzzle) -> (next state, logits, q_halt, q_continue)."""
        if not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()):
            self._check_inputs(state, inputs, puzzle_identifiers)
        x = self.embed(inputs, puzzle_identifiers, puzzle_rows)
        state = self.recur(State(*state), x)
        return StepOutput(state, *self.readout(state.z_H))

    forward = step

    def run(
        self, inputs: torch.Tensor, puzzle_identifiers: torch.Tensor | None = None, steps: int | None = None
    ) -> Iterator[StepOutput]:
        """Supervision steps 1..steps (default halt_max_steps) from the initial state, as the
        official evaluation runs them: every step's output, in order. The one fixed-steps loop that
        training's evaluation and the PyTorch baseline share."""
        state = self.initial_state(len(inputs), inputs.device)
        for _ in range(steps or self.config.halt_max_steps):
            out = self.step(state, inputs, puzzle_identifiers)
            state = out.state
            yield out

    def halted(self, q_halt: torch.Tensor, q_continue: torch.Tensor) -> torch.Tensor:
        """This model's own halting rule (TRM: q_halt > 0; HRM: q_halt > q_continue)."""
        if self.config.halt_rule == "q_halt>0":
            return q_halt > 0
        return q_halt > q_continue

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _check_inputs(self, state: State, inputs: torch.Tensor, ids: torch.Tensor | None) -> None:
        c = self.config
        if inputs.dim() != 2 or inputs.shape[1] != c.seq_len:
            raise TrmEdgeError(f"inputs must have shape (batch, {c.seq_len}), got {tuple(inputs.shape)}")
        if inputs.is_floating_point():
            raise TrmEdgeError(f"inputs must be integer token ids, got {inputs.dtype}")
        if inputs.numel() and (int(inputs.min()) < 0 or int(inputs.max()) >= c.vocab_size):
            raise TrmEdgeError(
                f"token ids must lie in [0, {c.vocab_size}), got {int(inputs.min())}..{int(inputs.max())}"
            )
        expected = (inputs.shape[0], c.total_len, c.hidden_size)
        for name, z in zip(("z_H", "z_L"), state, strict=True):
            if tuple(z.shape) != expected:
                raise TrmEdgeError(f"state {name} must have shape {expected}, got {tuple(z.shape)}")
        if ids is not None and c.puzzle_emb_ndim > 0:
            if tuple(ids.shape) != (inputs.shape[0],):
                raise TrmEdgeError(f"puzzle_identifiers must have shape ({inputs.shape[0]},)")
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= c.num_puzzle_identifiers):
                raise TrmEdgeError(
                    f"puzzle identifiers must lie in [0, {c.num_puzzle_identifiers}), "
                    f"got {int(ids.min())}..{int(ids.max())}"
                )


def _trunc_normal(t: torch.Tensor, std: float) -> None:
    """Normal truncated at +-2 std, rescaled so the result really has standard deviation `std`."""
    # Variance of a standard normal truncated to [-2, 2]: 1 - 2*2*pdf(2)/z with z = erf(sqrt 2).
    z = math.erf(2 / math.sqrt(2))
    pdf2 = math.exp(-2.0) / math.sqrt(2 * math.pi)
    comp_std = std / math.sqrt(1 - 4 * pdf2 / z)
    nn.init.trunc_normal_(t, std=comp_std, a=-2 * comp_std, b=2 * comp_std)
