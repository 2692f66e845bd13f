"""The building blocks of the recursion net: RMSNorm, SwiGLU, attention with RoPE, and a block.

Each block is post-norm (normalise after the residual add), with RMSNorm computed in float32
whatever the activations' dtype, exactly as the official TRM/HRM code computes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from trm_edge.config import ModelConfig, swiglu_intermediate
from trm_edge.quantization import InputQuantizer, fake_quant_weight

# Exported graphs take the forms below that ONNX runtimes run faster (see SwiGLU, Block); False only
# to measure what they gain (benchmarks/step_peers.py exports both).
EXPORT_REWRITES = True
_tracing_a_program = False  # inside `exporting_programs()`


@contextmanager
def exporting_programs() -> Iterator[None]:
    """Trace the export forms for another exporter than ONNX's (torch.export for ExecuTorch and LiteRT):
    they also keep ExecuTorch's lowering from fixing the batch at the example's (a linear on a
    transposed activation does)."""
    global _tracing_a_program
    _tracing_a_program = True
    try:
        yield
    finally:
        _tracing_a_program = False


def _rewriting() -> bool:
    return EXPORT_REWRITES and (_tracing_a_program or torch.onnx.is_in_onnx_export())


def rms_norm(x: torch.Tensor, eps: float, dim: int = -1) -> torch.Tensor:
    """RMS normalisation over axis `dim` (the last by default), without a learned scale, in float32."""
    dtype = x.dtype
    x = x.float()
    x = x * torch.rsqrt(x.square().mean(dim, keepdim=True) + eps)
    return x.to(dtype)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """A matrix product in the activations' dtype (weights may be stored in another)."""
    return F.linear(x, weight.to(x.dtype), None if bias is None else bias.to(x.dtype))


class Linear(nn.Linear):
    """A linear layer; with `quantized`, its products run on int8-rounded inputs and weights
    (trm_edge/quantization.py): weights per output channel, or per tensor (`per_channel=False`)
    where the weight multiplies from the left."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False, quantized: bool = False,
                 per_channel: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.quantizer = InputQuantizer() if quantized else None
        self.per_channel = per_channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.product(self.quantize_input(x))

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.quantizer is None else self.quantizer(x)

    def product(self, x: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """x @ W[rows]^T (+ bias) for an input already passed through `quantize_input`."""
        weight = self.weight if rows is None else self.weight[rows]
        if self.quantizer is None:
            return linear(x, weight, self.bias)
        if torch.onnx.is_in_onnx_export():
            # Quantize the transposed weight, so that the graph's DequantizeLinear feeds the MatMul
            # directly (a Transpose between them hides the int8 pattern from the runtimes).
            w_t = fake_quant_weight(weight.t(), 1 if self.per_channel else None)
            out = torch.matmul(x, w_t.to(x.dtype))
            return out if self.bias is None else out + self.bias.to(x.dtype)
        return linear(x, fake_quant_weight(weight, 0 if self.per_channel else None), self.bias)

    def left_product(self, x: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """W[rows] @ x (no bias) for an input already passed through `quantize_input`."""
        weight = self.weight if rows is None else self.weight[rows]
        if self.quantizer is not None:
            weight = fake_quant_weight(weight, 0 if self.per_channel else None)
        return torch.matmul(weight.to(x.dtype), x)


class SwiGLU(nn.Module):
    """down(silu(gate) * up), with gate and up computed by one fused projection.

    Exported graphs compute gate and up as two products of the weight's halves instead: ONNX
    runtimes copy each half of a split activation (the Slices took a fifth of a CPU step of the
    shipped Sudoku model in ONNX Runtime), while two half-width products cost what one did. An
    int8 model computes the two halves apart everywhere (a per-tensor weight scale is the half's).

    `quantized` makes the gate and up products int8 (per-channel weights; per-tensor with `left`,
    the MLP across positions, whose exported form multiplies the weights from the left)."""

    def __init__(self, width: int, expansion: float, quantized: bool = False, left: bool = False) -> None:
        super().__init__()
        inner = swiglu_intermediate(width, expansion)
        self.inner = inner
        self.gate_up_proj = Linear(width, 2 * inner, bias=False, quantized=quantized, per_channel=not left)
        # The down projection stays float: its input silu(gate) * up is heavy-tailed (shipped Sudoku
        # model: median 0.07-0.25, max 108-192), so one int8 scale per tensor rounds most of it to 0.
        self.down_proj = Linear(inner, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _rewriting() or self.gate_up_proj.quantizer is not None:
            x = self.gate_up_proj.quantize_input(x)
            gate = self.gate_up_proj.product(x, slice(None, self.inner))
            up = self.gate_up_proj.product(x, slice(self.inner, None))
        else:
            gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)

    def mix_axis_1(self, x: torch.Tensor) -> torch.Tensor:
        """The same MLP applied along axis 1 of x (B, L, D), as products with the weights on the
        left: forward(x.transpose(1, 2)).transpose(1, 2) without the two transposes."""
        x = self.gate_up_proj.quantize_input(x)
        gate = self.gate_up_proj.left_product(x, slice(None, self.inner))
        up = self.gate_up_proj.left_product(x, slice(self.inner, None))
        return self.down_proj.left_product(self.down_proj.quantize_input(F.silu(gate) * up))


def rope_tables(head_dim: int, length: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables (length, head_dim) for rotary positions, half-split layout."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(length, dtype=torch.float32), inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, S, heads, head_dim) by position; done in float32 like the official code."""
    dtype = x.dtype
    x = x.float()
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    out = x * cos.unsqueeze(-2) + rotated * sin.unsqueeze(-2)
    return out.to(dtype)


class SelfAttention(nn.Module):
    """Non-causal multi-head self-attention over all positions."""

    def __init__(self, hidden_size: int, num_heads: int, quantized: bool = False) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.qkv_proj = Linear(hidden_size, 3 * hidden_size, bias=False, quantized=quantized)
        self.o_proj = Linear(hidden_size, hidden_size, bias=False, quantized=quantized)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        batch, length, width = x.shape
        if _rewriting():  # three products, no split of the activation (see SwiGLU)
            x = self.qkv_proj.quantize_input(x)
            q, k, v = (self.qkv_proj.product(x, slice(i * width, (i + 1) * width))
                       .view(batch, length, self.num_heads, self.head_dim) for i in range(3))
        else:
            qkv = self.qkv_proj(x).view(batch, length, 3 * self.num_heads, self.head_dim)
            q, k, v = qkv.split(self.num_heads, dim=2)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, heads, S, head_dim)
        if torch.onnx.is_in_onnx_export():
            out = _attention_for_export(q, k, v, self.head_dim**-0.5)
        else:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=False)
        return self.o_proj(out.transpose(1, 2).reshape(batch, length, width))


def _attention_for_export(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """softmax(q k^T * scale) v spelled out: plain MatMul/Softmax in any dtype (the exporter's SDPA
    lowering fails for bfloat16), a constant scale, and the softmax in float32."""
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    weights = torch.softmax(scores.float(), dim=-1).to(v.dtype)
    return torch.matmul(weights, v)


class Block(nn.Module):
    """Token mixing (attention, or an MLP across positions) then a channel MLP, each post-norm."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.eps = config.rms_norm_eps
        quantized = config.quantize == "int8"
        if config.mlp_t:
            self.mlp_t = SwiGLU(config.total_len, config.expansion, quantized, left=True)
        else:
            self.attn = SelfAttention(config.hidden_size, config.num_heads, quantized)
        self.mlp = SwiGLU(config.hidden_size, config.expansion, quantized)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        if hasattr(self, "mlp_t") and _rewriting():
            # The same as below without transposes, which ONNX runtimes copy (a 1.2-1.4x faster CPU
            # step for the shipped Sudoku model in ONNX Runtime; benchmarks/step_peers.py).
            x = rms_norm(x + self.mlp_t.mix_axis_1(x), self.eps, dim=1)
        elif hasattr(self, "mlp_t"):
            # Mix across positions: the norm then runs over the position axis, as officially.
            xt = x.transpose(1, 2)
            x = rms_norm(xt + self.mlp_t(xt), self.eps).transpose(1, 2)
        else:
            x = rms_norm(x + self.attn(x, rope), self.eps)
        return rms_norm(x + self.mlp(x), self.eps)


class ReasoningNet(nn.Module):
    """A stack of blocks applied to `state + injection` (the input injection of TRM/HRM)."""

    def __init__(self, config: ModelConfig, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Block(config) for _ in range(num_layers))

    def forward(
        self, state: torch.Tensor, injection: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        x = state + injection
        for layer in self.layers:
            x = layer(x, rope)
        return x
