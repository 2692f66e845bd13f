"""A float model made int8 (its products fake-quantized, trm_edge/quantization.py), and the
calibration that gives each product's input its scale.

    model = int8_copy(load_checkpoint("sudoku.safetensors"))
    calibrate(model, tokens)  # real puzzles; every supervision step up to the model's max

Post-training quantization stops here (export --precision int8 on a float checkpoint); training
(`train.quantize: int8`) starts from here and fine-tunes through the rounding.
"""

from __future__ import annotations

import copy
import dataclasses

import torch

from trm_edge.model import RecursiveReasoningModel
from trm_edge.quantization import quantizers, set_mode


def int8_copy(model: RecursiveReasoningModel) -> RecursiveReasoningModel:
    """A copy of `model` whose reasoning products run int8-rounded, uncalibrated (scales 0); an
    already int8 model is copied as it is."""
    if model.config.quantize == "int8":
        return copy.deepcopy(model)
    config = dataclasses.replace(model.config, quantize="int8")
    quantized = RecursiveReasoningModel(config).to(device=model.H_init.device)
    missing, unexpected = quantized.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.endswith("input_scale") for k in missing), (missing, unexpected)
    quantized.to(dtype=model.compute_dtype)
    quantized.info = dict(getattr(model, "info", {}))
    return quantized.train(model.training)


@torch.no_grad()
def calibrate(model: RecursiveReasoningModel, tokens: torch.Tensor, puzzle_identifiers: torch.Tensor | None = None,
              steps: int | None = None, batch: int = 64) -> None:
    """Set every input scale of an int8 model to the largest magnitude its product sees on
    `tokens` over `steps` supervision steps (default: the model's max), in float32."""
    if model.config.quantize != "int8":
        raise ValueError("calibrate needs an int8 model: int8_copy(model) first")
    was_training = model.training
    model.eval()
    for q in quantizers(model):
        q.input_scale.zero_()
    set_mode(model, observing=True)
    try:
        for start in range(0, len(tokens), batch):
            ids = None if puzzle_identifiers is None else puzzle_identifiers[start:start + batch]
            for _ in model.run(tokens[start:start + batch], ids, steps):
                pass
    finally:
        set_mode(model)
        model.train(was_training)


def float_copy(model: RecursiveReasoningModel) -> RecursiveReasoningModel:
    """The float model an int8 one rounds (its weights, no rounding, no scales); a float model is
    returned as it is."""
    if model.config.quantize == "none":
        return model
    config = dataclasses.replace(model.config, quantize="none")
    plain = RecursiveReasoningModel(config).to(device=model.H_init.device)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.endswith(".input_scale")})
    plain.to(dtype=model.compute_dtype)
    plain.info = dict(getattr(model, "info", {}))
    return plain.train(model.training)
