"""bench's tables: one backend's rows (with the PyTorch peers), the comparison with the fastest peer, and
the rows of several backends and precisions."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def rows_table(report: dict[str, Any], model_dir: str) -> Table:
    env = report["environment"]
    table = Table(title=f"trm-edge bench: {model_dir} ({env['backend']}, {env['precision']}, halting {env['halting']})")
    for col in ("engine", "slots", "step ms, every slot full", "puzzles/s", "latency p50/p90/p99 ms", "mean steps",
                "exact", "verified share"):
        table.add_column(col, justify="right")
    for r in report["rows"]:
        table.add_row(f"{env['backend']} {env['precision']}", str(r["batch"]), f"{r['step']['ms']:.2f}",
                      f"{r['puzzles_per_s']:.1f}", _latency(r["latency_ms"]), f"{r['mean_steps']:.2f}",
                      _pct(r["exact"]), _pct(r["verified"]))
    for r in report.get("torch", []):
        table.add_row(r["engine"], str(r["batch"]), f"{r['step_ms']:.2f}", f"{r['puzzles_per_s']:.1f}", "-",
                      str(r["steps"]), _pct(r["exact"]), "-")
    table.caption = (f"step: the median of one backend step with every slot full; the rest over "
                     f"{report['puzzles']['count']} puzzles ({report['puzzles']['source']}), halting included: a "
                     f"solve's own steps run fewer slots as puzzles halt (JSON: loop)")
    return table


def against_torch_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="against the fastest PyTorch peer: the step itself, and halting apart from it")
    for col in ("slots", "fastest peer", "its step ms", "runtime step ms", "step speed", "halting saves",
                "puzzles/s, all told"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["batch"]), r["fastest_peer"], f"{r['peer_step_ms']:.2f}", f"{r['runtime_step_ms']:.2f}",
                      f"{r['step_ratio']:.2f}x", f"{r['halting_gain']:.1f}x fewer steps",
                      f"{r['puzzles_per_s_ratio']:.1f}x")
    return table


def matrix_table(rows: list[dict[str, Any]], model_dir: str) -> Table:
    table = Table(title=f"trm-edge bench: {model_dir}, backend by backend")
    # The step with every slot full is the figure that compares backends and precisions whatever the
    # puzzles (the rest depends on halting): shown, since timing it costs up to ~3 s a row.
    for col in ("backend", "format", "precision", "status", "slots", "step ms, every slot full", "exact", "verified",
                "mean steps", "latency p50/p90/p99 ms", "puzzles/s"):
        table.add_column(col, justify="right" if col not in ("backend", "format", "status") else "left")
    for r in rows:
        written_as = r.get("format") or "-"
        if r["status"] != "ok":
            table.add_row(r["backend"], written_as, r["precision"], f"{r['status']}: {r['reason']}", *["-"] * 7)
            continue
        table.add_row(r["backend"], written_as, r["precision"], "ok", str(r["batch"]), f"{r['step']['ms']:.2f}",
                      _pct(r["exact"]),
                      _pct(r["verified"]), f"{r['mean_steps']:.2f}", _latency(r["latency_ms"]),
                      f"{r['puzzles_per_s']:.1f}")
    return table


def _latency(latency: dict[str, float]) -> str:
    return "/".join(f"{latency[k]:.1f}" for k in ("p50", "p90", "p99"))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


