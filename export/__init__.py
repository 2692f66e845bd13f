"""Stage 2: the recursion step as ONNX (validated against PyTorch), TensorRT engines, Triton repositories.

Entry point: `trm_edge.export.export(checkpoint, output, format="onnx"|"engine"|"triton", ...)`
(`formats.py`; what `trm-edge export` runs). Imported lazily: the CLI registers this stage's
commands on machines without torch.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "export":
        from trm_edge.export.formats import export

        return export
    raise AttributeError(f"module 'trm_edge.export' has no attribute {name!r}")
