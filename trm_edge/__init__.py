"""trm-edge: Tiny Recursive Models (TRM, HRM) from training to devices.

`from trm_edge import load_checkpoint` gives the PyTorch model; the torch-free runtime lives in
`trm_edge.runtime`. Importing this package imports no torch: the names below load on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_checkpoint": "trm_edge.checkpoint",
    "save_checkpoint": "trm_edge.checkpoint",
    "RecursiveReasoningModel": "trm_edge.model",
    "State": "trm_edge.model",
    "ModelConfig": "trm_edge.config",
    "TrmEdgeError": "trm_edge.errors",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trm_edge' has no attribute {name!r}")
