"""int8 as the exported QDQ graph computes it, simulated in PyTorch ("fake quantization").

What an int8 step quantizes (the same in training, in PyTorch evaluation and in the graph): the
matrix products of the reasoning nets that take well-behaved inputs (attention's projections, the
gate and up products of both SwiGLUs: of the channel MLP and of the MLP across positions), with
- weights symmetric int8 (zero point 0): per output channel where the weight is the right operand
  (x @ W^T), per tensor where it is the left one (the MLP across positions, W @ x: ONNX Runtime's
  and TensorRT's int8 products take one scale for their left input);
- their input activations symmetric int8 per tensor, with a fixed scale per product: observed on
  real puzzles (post-training calibration), then tracked while quantization-aware training runs,
  and recorded in the checkpoint (`*.input_scale` buffers).
SwiGLU's down products stay float (their input silu(gate) * up is heavy-tailed: one scale per
tensor rounds most of it to zero), as do embeddings, RMSNorm, softmax, the answer head and the Q
head (a small part of the work; halting compares the Q logit with a threshold).

The fake-quantize ops pass gradients straight through inside the clipping range (STE), and the
TorchScript exporter writes each one as a QuantizeLinear/DequantizeLinear pair; the export then
stores the quantized weights as int8 initializers (export/qdq.py, export/int8_export.py).
"""

from __future__ import annotations

import torch

INT8_MIN, INT8_MAX = -128, 127
# Symmetric scales (TensorRT's explicit quantization wants zero points of 0) map an activation's
# largest magnitude to 127, and a weight's to 63: 7-bit weights, so that CPUs without VNNI give the
# answers VNNI CPUs and GPUs give. Their int8 products (pmaddubsw: unsigned 8-bit activations times
# signed weights, summed in pairs into int16) saturate with 8-bit weights: measured on a Zen 3, the
# answers of ONNX Runtime's int8 step agreed with the exact int8 arithmetic on 96.7% of cells and
# OpenVINO's on 90.7%, after 4 steps of a small TRM. 255 * 63 * 2 < 2^15 never saturates.
LEVELS = 127.0
WEIGHT_LEVELS = 63.0
# How fast a tracked activation scale follows the observed range while quantization-aware
# training runs (an exponential moving average of each batch's max magnitude).
SCALE_MOMENTUM = 0.99


def _zero_points(n: int, device: torch.device) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.int32, device=device)


def fake_quant_activation(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x rounded to the int8 grid of `scale` (a 0-d float32 tensor), per tensor."""
    out = torch.fake_quantize_per_tensor_affine(x.float(), scale.reshape(()).float(),
                                                _zero_points(1, x.device)[0], INT8_MIN, INT8_MAX)
    return out.to(x.dtype)


def weight_scales(weight: torch.Tensor, axis: int | None) -> torch.Tensor:
    """Symmetric scales of `weight`: one per slice along `axis`, or one for the tensor."""
    magnitude = weight.detach().float().abs()
    if axis is None:
        top = magnitude.max()
    else:
        other = [d for d in range(weight.dim()) if d != axis]
        top = magnitude.amax(dim=other)
    return top.clamp_min(1e-8) / WEIGHT_LEVELS


def fake_quant_weight(weight: torch.Tensor, axis: int | None) -> torch.Tensor:
    """`weight` rounded to int8 per channel along `axis` (None: one scale for the tensor)."""
    scales = weight_scales(weight, axis)
    if torch.onnx.is_in_onnx_export():  # constants in the graph, not ops on the weight
        scales = torch.from_numpy(scales.numpy().copy())
    w = weight.float()
    if axis is None:
        out = torch.fake_quantize_per_tensor_affine(w, scales, _zero_points(1, w.device)[0], INT8_MIN, INT8_MAX)
    else:
        out = torch.fake_quantize_per_channel_affine(w, scales, _zero_points(scales.numel(), w.device), axis,
                                                     INT8_MIN, INT8_MAX)
    return out.to(weight.dtype)


class InputQuantizer(torch.nn.Module):
    """The per-tensor int8 scale of one product's input, and what is done with it now:
    `observing` records the largest magnitude seen (calibration), `tracking` follows it while
    training, otherwise the input is quantized with the recorded scale."""

    input_scale: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("input_scale", torch.zeros(()))  # 0: not calibrated yet
        self.observing = False
        self.tracking = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing:
            seen = x.detach().float().abs().max() / LEVELS
            self.input_scale.copy_(torch.maximum(self.input_scale, seen))
            return x
        if self.tracking and self.training:
            seen = x.detach().float().abs().max() / LEVELS
            self.input_scale.mul_(SCALE_MOMENTUM).add_((1 - SCALE_MOMENTUM) * seen)
        return fake_quant_activation(x, self.input_scale)


def quantizers(model: torch.nn.Module) -> list[InputQuantizer]:
    return [m for m in model.modules() if isinstance(m, InputQuantizer)]


def uncalibrated(model: torch.nn.Module) -> int:
    """How many of the model's int8 products have no input scale yet (checked once, not per call)."""
    return sum(1 for q in quantizers(model) if float(q.input_scale) <= 0)


def set_mode(model: torch.nn.Module, observing: bool = False, tracking: bool = False) -> None:
    for q in quantizers(model):
        q.observing, q.tracking = observing, tracking
