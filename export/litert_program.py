"""LiteRT programs (.tflite) of the init and step, converted by litert-torch (no TensorFlow), at a
fixed batch of `width` rows: its converter does not take a dynamic batch through the model's
reshapes, so the runtime pads a shorter batch (trm_edge/programs.py)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from trm_edge.programs import quiet_native_logs

# litert-torch prints a line per conversion stage; the export shows its own status instead.
PROGRESS_SWITCH = "LITERT_TORCH_SHOW_PROGRESS"


def write_programs(model: torch.nn.Module, modules: dict[str, torch.nn.Module],
                   examples: dict[str, tuple[torch.Tensor, ...]], width: int, files: list[Path]) -> None:
    from trm_edge.export.program_export import example_inputs

    fixed = example_inputs(model, width)  # type: ignore[arg-type]
    shown = os.environ.get(PROGRESS_SWITCH)
    os.environ[PROGRESS_SWITCH] = "n"
    try:
        with quiet_native_logs(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's pytree deprecation notes, once per tensor
            import litert_torch

            for (name, module), path in zip(modules.items(), files, strict=True):
                with torch.no_grad():
                    converted = litert_torch.convert(module, fixed[name])
                converted.export(str(path))
    finally:
        if shown is None:
            os.environ.pop(PROGRESS_SWITCH, None)
        else:
            os.environ[PROGRESS_SWITCH] = shown
