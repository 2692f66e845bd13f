"""Stage 2: the recursion step as ONNX (validated against PyTorch), TensorRT engines, Triton
repositories, web sites, phone programs.

Entry point: `trm_edge.export.export(checkpoint, output, format="onnx"|"solve"|"web"|"triton"|...)`,
what `trm-edge export` runs. It lives in the app layer (trm_edge/app/exporting.py), since an export
also needs the runtime (the halting calibration, solve.onnx's check) and a stage imports no other:
named here, it is imported by name on first use. This stage's own call is `formats.export_format`.
Imported lazily: the CLI registers this stage's commands on machines without torch.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    if name == "export":
        return importlib.import_module("trm_edge.app.exporting").export
    raise AttributeError(f"module 'trm_edge.export' has no attribute {name!r}")
