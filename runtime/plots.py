"""Pictures of what a benchmark or a calibration found (matplotlib, optional: the `plot` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trm_edge.pictures import pyplot, save


def plot_bench(path: str | Path, rows: list[dict[str, Any]], calibration: dict[str, Any] | None, title: str) -> Path:
    """Left: latency per puzzle and throughput against batch. Right: accuracy against steps."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    batches = [r["batch"] for r in rows]
    left.plot(batches, [r["latency_ms"]["p50"] for r in rows], "o-", label="latency per puzzle, p50")
    left.plot(batches, [r["latency_ms"]["p99"] for r in rows], "o--", label="latency per puzzle, p99")
    left.set_xscale("log", base=2)
    left.set_xlabel("slots")
    left.set_ylabel("ms")
    twin = left.twinx()
    twin.plot(batches, [r["puzzles_per_s"] for r in rows], "s-", color="tab:green", label="puzzles/s")
    twin.set_ylabel("puzzles / s")
    twin.set_ylim(bottom=0)
    left.set_ylim(bottom=0)
    left.legend(loc="upper left", fontsize=8)
    twin.legend(loc="lower right", fontsize=8)
    left.set_title("latency and throughput vs slots")
    if calibration:
        plot_accuracy_vs_steps(right, calibration)
    else:
        right.text(0.5, 0.5, "no labels given: no accuracy", ha="center", va="center")
        right.set_axis_off()
    return save(plt, fig, path, title)


def plot_matrix(path: str | Path, rows: list[dict[str, Any]], title: str) -> Path:
    """Puzzles/s of every backend x precision that runs here, one bar group per batch size."""
    plt = pyplot()
    ok = [r for r in rows if r["status"] == "ok"]
    engines = list(dict.fromkeys(f"{r['backend']} {r['precision']}" for r in ok))
    batches = sorted({r["batch"] for r in ok})
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(batches) * max(1, len(engines))), 4.2))
    width = 0.8 / max(1, len(engines))
    for i, engine in enumerate(engines):
        values = [next((r["puzzles_per_s"] for r in ok if f"{r['backend']} {r['precision']}" == engine
                        and r["batch"] == b), 0.0) for b in batches]
        ax.bar([j + i * width for j in range(len(batches))], values, width, label=engine)
    ax.set_xticks([j + width * (len(engines) - 1) / 2 for j in range(len(batches))], [f"batch {b}" for b in batches])
    ax.set_ylabel("puzzles / s")
    ax.legend(fontsize=8)
    refused = [f"{r['backend']} {r['precision']}: {r['status']}" for r in rows if r["status"] != "ok"]
    if refused:
        ax.set_title("not run here: " + "; ".join(refused)[:160], fontsize=7)
    return save(plt, fig, path, title)


def plot_demo(
    path: str | Path, rows: list[dict[str, Any]], torch_rows: list[dict[str, Any]], curve: dict[str, Any], title: str
) -> Path:
    """Left: puzzles/s of the runtime and of PyTorch eager side by side per batch. Right: accuracy vs steps."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    positions = range(len(rows))
    width = 0.38
    runtime = [r["puzzles_per_s"] for r in rows]
    baseline = [r["puzzles_per_s"] for r in torch_rows]
    steps = sorted({f"{r['mean_steps']:.1f}" for r in rows})
    left.bar([p - width / 2 for p in positions], runtime, width, color="tab:green",
             label=f"trm-edge runtime ({'-'.join(steps)} mean steps)")
    peers = sorted({r.get("engine", "PyTorch eager") for r in torch_rows})
    left.bar([p + width / 2 for p in positions], baseline, width, color="tab:gray",
             label=f"fastest PyTorch peer ({', '.join(peers)}), official loop ({torch_rows[0]['steps']} steps)")
    for p, fast, slow in zip(positions, runtime, baseline, strict=True):
        left.text(p - width / 2, fast, f"{fast / slow:.1f}x", ha="center", va="bottom", fontsize=9)
    left.set_xticks(list(positions), [f"batch {r['batch']}" for r in rows])
    left.set_ylim(0, 1.3 * max(runtime + baseline))  # room for the legend and the speed-up labels
    left.set_ylabel("puzzles / s")
    left.set_title("speed, same weights, same machine")
    left.legend(fontsize=8, loc="upper left")
    plot_accuracy_vs_steps(right, curve)
    return save(plt, fig, path, title)


def plot_accuracy_vs_steps(ax: Any, calibration: dict[str, Any]) -> None:
    by_step = calibration["exact_by_step"]
    ax.plot(range(1, len(by_step) + 1), [100 * v for v in by_step], "k.-", label="fixed N steps")
    if "verified_by_step" in calibration:
        verified = calibration["verified_by_step"]
        ax.plot(range(1, len(verified) + 1), [100 * v for v in verified], ".--", color="tab:green",
                label="verified after N steps")
    families = {"model": "tab:red", "threshold": "tab:blue", "stable": "tab:orange", "both": "tab:purple",
                "verified": "tab:green"}
    for row in calibration["policies"]:
        name = row["policy"]
        if name.startswith("fixed"):
            continue
        family = policy_family(name)
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
    ax.set_ylabel(f"exact solves (%), by {calibration.get('scored_by', 'labels')}")
    ax.set_title("accuracy vs steps")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)


def plot_calibration(path: str | Path, calibration: dict[str, Any], title: str) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    plot_accuracy_vs_steps(ax, calibration)
    return save(plt, fig, path, title)


def policy_family(name: str) -> str:
    """model, threshold, stable, both (threshold and stable) or verified (with any fallback)."""
    if name.startswith("verified"):
        return "verified"
    return "model" if name == "model" else "both" if "," in name else name.split(":")[0]
