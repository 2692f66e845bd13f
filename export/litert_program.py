"""LiteRT programs (.tflite) of the init and step, converted by litert-torch (no TensorFlow), at a
fixed batch of `width` rows: its converter does not take a dynamic batch through the model's
reshapes, so the runtime pads a shorter batch (trm_edge/programs.py)."""

from __future__ import annotations

from pathlib import Path

import torch


def write_programs(model: torch.nn.Module, modules: dict[str, torch.nn.Module],
                   examples: dict[str, tuple[torch.Tensor, ...]], width: int, files: list[Path]) -> None:
    import litert_torch

    from trm_edge.export.program_export import example_inputs

    fixed = example_inputs(model, width)  # type: ignore[arg-type]
    for (name, module), path in zip(modules.items(), files, strict=True):
        with torch.no_grad():
            converted = litert_torch.convert(module, fixed[name])
        converted.export(str(path))
