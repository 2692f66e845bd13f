"""Pictures of what a benchmark or a calibration found (matplotlib, optional: the `plot` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trm_edge.errors import TrmEdgeError


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise TrmEdgeError("plots need matplotlib: pip install 'trm-edge[plot]'") from None
    return plt


def plot_bench(path: str | Path, rows: list[dict[str, Any]], calibration: dict[str, Any] | None, title: str) -> Path:
    """Left: latency per puzzle and throughput against batch. Right: accuracy against steps."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    batches = [r["batch"] for r in rows]
    left.plot(batches, [r["latency_ms"]["p50"] for r in rows], "o-", label="latency per puzzle, p50")
    left.plot(batches, [r["latency_ms"]["p99"] for r in rows], "o--", label="latency per puzzle, p99")
    left.set_xscale("log", base=2)
    left.set_xlabel("batch")
    left.set_ylabel("ms")
    twin = left.twinx()
    twin.plot(batches, [r["puzzles_per_s"] for r in rows], "s-", color="tab:green", label="puzzles/s")
    twin.set_ylabel("puzzles / s")
    twin.set_ylim(bottom=0)
    left.set_ylim(bottom=0)
    left.legend(loc="upper left", fontsize=8)
    twin.legend(loc="lower right", fontsize=8)
    left.set_title("latency and throughput vs batch")
    if calibration:
        plot_accuracy_vs_steps(right, calibration)
    else:
        right.text(0.5, 0.5, "no labels given: no accuracy", ha="center", va="center")
        right.set_axis_off()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_accuracy_vs_steps(ax: Any, calibration: dict[str, Any]) -> None:
    by_step = calibration["exact_by_step"]
    ax.plot(range(1, len(by_step) + 1), [100 * v for v in by_step], "k.-", label="fixed N steps")
    families = {"model": "tab:red", "threshold": "tab:blue", "stable": "tab:orange", "both": "tab:purple"}
    for row in calibration["policies"]:
        name = row["policy"]
        family = "model" if name == "model" else "both" if "," in name else name.split(":")[0]
        ax.plot(row["mean_steps"], 100 * row["exact"], "o", color=families[family], ms=4, alpha=0.7)
    for family, colour in families.items():
        ax.plot([], [], "o", color=colour, label=f"halting: {family}")
    chosen = calibration.get("chosen")
    if chosen:
        ax.plot(
            chosen["mean_steps"],
            100 * chosen["exact"],
            "*",
            color="gold",
            ms=16,
            mec="k",
            label=f"default: {chosen['policy']}",
        )
    ax.set_xlabel("mean steps per puzzle")
    ax.set_ylabel("exact solves (%)")
    ax.set_title("accuracy vs steps")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)


def plot_calibration(path: str | Path, calibration: dict[str, Any], title: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    plot_accuracy_vs_steps(ax, calibration)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
