"""Drawing with matplotlib (optional: the `plot` extra), for the core's task pictures and the
runtime's plots alike: one way to get pyplot headless and one way to save a figure whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trm_edge.atomic import atomic_file
from trm_edge.errors import TrmEdgeError


def pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise TrmEdgeError("plots need matplotlib: pip install 'trm-edge[plot]'") from None
    return plt


def save(plt: Any, fig: Any, path: str | Path, title: str) -> Path:
    """`fig` with `title` written atomically to `path` (its suffix gives the format), then closed."""
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        with atomic_file(path) as handle:
            fig.savefig(handle, dpi=120, format=Path(path).suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return Path(path)
