"""Training metrics: one JSON line per log or evaluation, and a plot of the curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class MetricsLog:
    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and path.is_file():
            # A resumed run repeats the steps after its checkpoint: drop their old lines.
            kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= resume_step]
            path.write_text("".join(line + "\n" for line in kept))
        elif resume_step is None and path.exists():
            path.unlink()

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]


def plot_curves(records: list[dict[str, Any]], out: Path) -> Path | None:
    """Loss and accuracies against steps; None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        steps = [r["step"] for r in train]
        ax_loss.plot(steps, [r["answer_loss"] for r in train], label="answer loss")
        ax_loss.plot(steps, [r["halt_loss"] for r in train], label="halting loss")
        ax_acc.plot(steps, [r["cell_accuracy"] for r in train], alpha=0.5, label="train cells")
        ax_acc.plot(steps, [r["exact_accuracy"] for r in train], alpha=0.5, label="train exact (halted)")
    if evals:
        steps = [r["step"] for r in evals]
        ax_acc.plot(steps, [r["exact_accuracy"] for r in evals], "o-", label="test exact (max steps)")
        ax_acc.plot(steps, [r["cell_accuracy"] for r in evals], "s-", label="test cells")
        ax_acc.plot(steps, [r["halting_accuracy"] for r in evals], "^-", label="test halting")
    ax_loss.set_xlabel("step")
    ax_loss.set_yscale("log")
    ax_loss.legend()
    ax_acc.set_xlabel("step")
    ax_acc.set_ylim(0, 1)
    ax_acc.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
