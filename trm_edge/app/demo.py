"""`trm-edge demo`: the whole path on a shipped model (Sudoku; `--task maze`, or `--model NAME` for
any shipped one), on this machine, in about a minute.

export to ONNX (validated against PyTorch) -> load in the torch-free runtime (ONNX Runtime CPU)
-> solve held-out puzzles, halting each at its first verified answer -> show some solved grids ->
accuracy and verified answers with the default halting, the model's own rule and fixed max steps ->
speed against PyTorch eager running the official loop on the same weights -> a plot and a JSON file
of every figure.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.columns import Columns
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from trm_edge.checkpoint import read_header
from trm_edge.config import ModelConfig
from trm_edge.contract.halting_policy import LABEL_FREE_DEFAULT
from trm_edge.contract.held_out import LabelledPuzzles, load_puzzles
from trm_edge.errors import PassedOverWarning, TrmEdgeError
from trm_edge.hardware import cpu_has_int8_dot_products, cpu_name_and_flags
from trm_edge.shipped import ShippedModel, shipped_hard_examples, shipped_model

if TYPE_CHECKING:
    from trm_edge.runtime.solver import Result, Solver

SPEED_BATCHES = (1, 64)
# PyTorch's official loop runs every puzzle all 16 steps, each costing the same: a few timed steps
# give its speed (its accuracy is the recording's fixed-16 figure, on every measured puzzle).
TORCH_TIMED_STEPS = {1: 16, 64: 3}
# The PyTorch peers the demo times (bf16 autocast only where the CPU runs bf16 natively).
# torch.compile is left to `trm-edge bench --compare-torch` and benchmarks/step_peers.py: compiling
# takes longer than the whole demo on 2 cores.
DEMO_PEERS = ("eager", "eager-bf16")
DEMO_VERSIONS = 8  # test-time versions per puzzle in the demo's last phase


def run_demo(
    out: Path, console: Console, puzzles: int = 128, threads: int | None = None, shown: int = 3,
    model: str = "sudoku",
) -> dict[str, Any]:
    """The whole path on the shipped model `model` (a task's default, or a model's name), phase by
    phase; returns (and writes to OUT/demo.json) every figure shown."""
    from trm_edge.runtime.solver import Solver

    started = time.perf_counter()
    phases: dict[str, float] = {}

    def lap(name: str) -> None:  # seconds spent per phase, for demo.json
        phases[name] = round(time.perf_counter() - started - sum(phases.values()), 2)

    shipped = shipped_model(model)
    task = shipped.task
    checkpoint = shipped.checkpoint
    config, info = read_header(checkpoint)
    held_out = _held_out(shipped, config.seq_len, puzzles)
    _introduce(console, shipped, config, info, len(held_out))
    export_dir, worst = _export(checkpoint, out / "export", held_out, console)
    lap("export")
    live = Solver.load(export_dir, slots=64, threads=threads)  # backend, precision and halting: auto
    accuracy = _accuracy(live, held_out, config.halt_max_steps)
    lap("accuracy")
    rows, torch_rows, results = _speed(live, export_dir, checkpoint, held_out, threads, shown)
    int8_rows = _int8_speed(shipped.name, out / "export_int8", held_out, threads, console)
    lap("speed")
    versions = _versions(live, held_out, console, hard=task == "sudoku")
    lap("versions")

    labels = _labels(held_out)
    _show_grids(console, live, config.task, results, labels)
    pictures = _picture(out / "solved.png", live, results, labels)
    console.print(_accuracy_table(accuracy, len(held_out), config.halt_max_steps))
    console.print(_speed_table(rows + int8_rows, torch_rows, accuracy.default))
    from trm_edge.runtime.plots import plot_demo

    fastest = [_fastest(torch_rows, r["batch"]) for r in rows]
    plot = plot_demo(out / "demo.png", rows, fastest, accuracy.curve | {"chosen": accuracy.verified},
                     f"{shipped.name}: trm-edge runtime vs the fastest PyTorch peer timed")
    summary = {
        "model": shipped.name, "task": task, "checkpoint": str(checkpoint), "export_dir": str(export_dir),
        "validation_max_abs_diff": worst, "puzzles": len(held_out), **accuracy.figures(config.halt_max_steps),
        "runtime": rows, "runtime_int8": int8_rows, "torch": torch_rows, "versions": versions,
        "speedup": [r["puzzles_per_s"] / b["puzzles_per_s"] for r, b in zip(rows, fastest, strict=True)],
        "step_speed": [b["step_ms"] / r["fixed_width_step_ms"] for r, b in zip(rows, fastest, strict=True)],
        "halting_gain": [b["steps"] / r["mean_steps"] for r, b in zip(rows, fastest, strict=True)],
        "cpu": cpu_name_and_flags()[0], "seconds": time.perf_counter() - started, "phase_seconds": phases,
        "plot": str(plot),
        "pictures": str(pictures) if pictures else None,
    }
    (out / "demo.json").write_text(json.dumps(summary, indent=2, default=_plain))
    if pictures:
        console.print(f"solved mazes: [bold]{pictures}[/]")
    console.print(f"plot: [bold]{plot}[/]   figures: {out / 'demo.json'}   export: {export_dir}   "
                  f"({summary['seconds']:.0f} s)")
    return summary


def _labels(held_out: LabelledPuzzles) -> np.ndarray:
    """The solutions `_held_out` made sure the shipped puzzles have."""
    if held_out.labels is None:
        raise TrmEdgeError("the shipped held-out puzzles have no solutions: reinstall trm-edge")
    return held_out.labels


def _held_out(shipped: ShippedModel, seq_len: int, puzzles: int) -> LabelledPuzzles:
    """The first `puzzles` shipped held-out puzzles, with their solutions."""
    every = load_puzzles(shipped.heldout, seq_len)
    if not 1 <= puzzles <= len(every):
        raise TrmEdgeError(f"--puzzles must lie in [1, {len(every)}], got {puzzles}")
    if every.labels is None:  # the shipped file always has them; a broken install would not
        raise TrmEdgeError(f"{shipped.heldout} has no solutions: reinstall trm-edge")
    return every.head(puzzles)


def _introduce(console: Console, shipped: ShippedModel, config: ModelConfig, info: dict[str, Any], count: int) -> None:
    recipe = info.get("recipe", {})
    console.rule(f"[bold]trm-edge demo[/]: {shipped.name}")
    console.print(
        f"model: {config.arch.upper()} hidden {config.hidden_size}, {'MLP' if config.mlp_t else 'attention'} mixing, "
        f"H_cycles {config.H_cycles} x L_cycles {config.L_cycles}, up to {config.halt_max_steps} steps; "
        f"trained with `{info.get('command', '?')}` (recipe {recipe.get('name', '?')}, {info.get('step', '?')} steps)"
    )
    console.print(f"held-out: {count} {shipped.held_out}, none seen in training")


def _export(checkpoint: Path, export_dir: Path, held_out: LabelledPuzzles, console: Console) -> tuple[Path, float]:
    """The validated fp32 export, and the largest difference from PyTorch its validation saw."""
    from trm_edge.export.exporter import export_onnx

    result = export_onnx(checkpoint, export_dir, "fp32", tokens=held_out.inputs[:16])
    report = result.validation
    diffs = [c.value for c in report.checks if c.kind == "max_abs_diff"] if report else []
    worst = max(diffs) if diffs else float("nan")
    console.print(f"[green]exported[/] {export_dir}/init.onnx + step.onnx, validated against PyTorch over "
                  f"{report.steps if report else 0} steps (max |diff| {worst:.1e})")
    return export_dir, worst


@dataclass
class _Accuracy:
    default: str  # the runtime's default policy (verified halting)
    curve: dict[str, Any]  # calibrate.evaluate's figures over the recording
    verified: dict[str, Any]  # the default policy's row
    own: dict[str, Any]  # the model's own rule
    label_free: dict[str, Any]  # the label-free default

    def figures(self, max_steps: int) -> dict[str, Any]:
        return {
            "default_policy": self.default, "exact_default": self.verified["exact"],
            "mean_steps_default": self.verified["mean_steps"], "verified_default": self.verified["verified"],
            "exact_own_halting": self.own["exact"], "mean_steps_own_halting": self.own["mean_steps"],
            "label_free_policy": LABEL_FREE_DEFAULT, "exact_label_free": self.label_free["exact"],
            "mean_steps_label_free": self.label_free["mean_steps"],
            "exact_fixed_steps": self.curve["exact_by_step"][-1], "fixed_steps": max_steps,
            "exact_by_step": self.curve["exact_by_step"], "verified_by_step": self.curve["verified_by_step"],
        }


def _accuracy(live: Solver, held_out: LabelledPuzzles, max_steps: int) -> _Accuracy:
    """Every step of every puzzle recorded once; each policy replayed on the recording (the rule the
    runtime applies live), so no puzzle runs twice."""
    from trm_edge.runtime.calibrate import evaluate, record

    curve = evaluate(record(live, held_out, max_steps), held_out.labels, max_steps)
    by_name = {p["policy"]: p for p in curve["policies"]}
    default = live.policy.name
    return _Accuracy(default, curve, by_name[default], by_name["model"], by_name[LABEL_FREE_DEFAULT])


def _speed(
    live: Solver, export_dir: Path, checkpoint: Path, held_out: LabelledPuzzles, threads: int | None, shown: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Result]]:
    """The runtime's loop with its default halting (and its step, every slot full, timed in the same
    interleaved rounds as the peers') against the PyTorch peers running the official loop; and the
    first `shown` puzzles solved, to show."""
    from trm_edge.app.torch_eval import available_peers, torch_step_rate
    from trm_edge.runtime.bench import bench_batch, full_slot_stepper
    from trm_edge.runtime.solver import Solver

    peers = [p.name for p in available_peers() if p.name in DEMO_PEERS]
    rows, results, torch_rows = [], [], []
    for batch in SPEED_BATCHES:
        subset = held_out.head(_speed_puzzles(batch, len(held_out)))
        # As a user opens it at this batch: auto chooses per width (remembered in the export).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PassedOverWarning)  # said once, when the demo first opened it
            solver = Solver.load(export_dir, slots=batch, threads=threads)
        row = asdict(bench_batch(solver, subset, time_step=False)) | {"engine": f"trm-edge runtime ({solver.engine})"}
        if batch == max(SPEED_BATCHES):
            results = solver.solve([held_out.inputs[i] for i in range(shown)])
        # The step, every slot full, in the same interleaved rounds as the peers' (as bench --compare-torch
        # and benchmarks/step_peers.py time it): the step speed is one figure wherever it is quoted.
        def stepper(width: int, backend: Any = solver.backend) -> Callable[[], object]:
            return full_slot_stepper(backend, held_out.inputs, held_out.puzzle_identifiers, width)

        peer_rows, row["step"] = torch_step_rate(checkpoint, held_out, batch, TORCH_TIMED_STEPS[batch], threads, peers,
                                                 stepper)
        row["fixed_width_step_ms"] = row["step"]["ms"]
        rows.append(row)
        torch_rows += peer_rows
    return rows, torch_rows, results


def _int8_speed(name: str, export_dir: Path, held_out: LabelledPuzzles, threads: int | None,
                console: Console) -> list[dict[str, Any]]:
    """The same rows for the model's shipped int8 fine-tune (`NAME-int8`, exported --precision int8)
    on the faster int8 backend here; none where the model has no int8 fine-tune."""
    from trm_edge.export.exporter import export_onnx
    from trm_edge.runtime.bench import bench_batch
    from trm_edge.runtime.solver import Solver
    from trm_edge.shipped import SHIPPED

    if f"{name}-int8" not in SHIPPED:
        return []
    if not cpu_has_int8_dot_products():  # half a minute of export and timing to show a slower row
        console.print(f"int8 ({name}-int8): not timed, this CPU has no VNNI, where int8 runs slower than float "
                      "(docs/int8.md)")
        return []
    export_onnx(SHIPPED[f"{name}-int8"].checkpoint, export_dir, "int8", tokens=held_out.inputs[:16])
    console.print(f"[green]exported[/] {export_dir}/step_int8.onnx (the int8 fine-tune {name}-int8)")
    rows = []
    for batch in SPEED_BATCHES:
        solver = Solver.load(export_dir, slots=batch, threads=threads, precision="int8")
        row = asdict(bench_batch(solver, held_out.head(_speed_puzzles(batch, len(held_out)))))
        row["engine"] = f"trm-edge runtime ({solver.engine}, {name}-int8)"
        row["fixed_width_step_ms"] = row["step"]["ms"]  # every slot full (bench_batch's full_slot_step)
        rows.append(row)
    return rows


def _fastest(torch_rows: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    return min((r for r in torch_rows if r["batch"] == batch), key=lambda r: r["step_ms"])


def _versions(
    live: Solver, held_out: LabelledPuzzles, console: Console, count: int = DEMO_VERSIONS, hard: bool = True
) -> dict[str, Any]:
    """Test-time versions: a puzzle the plain version does not verify is asked again relabelled,
    shuffled, reflected or transposed (up to `count` versions). On the held-out puzzles, and (Sudoku)
    on shipped hard puzzles the plain version fails; one puzzle solved in another version is shown."""
    from trm_edge.runtime.puzzle_files import read_puzzles
    from trm_edge.runtime.versions import VersionedRun

    results = VersionedRun(live, count).solve([(t, 0) for t in held_out.inputs])
    exact = float(np.mean([(r.answer == label).all() for r, label in zip(results, _labels(held_out), strict=True)]))
    summary = {"versions": count, "exact": exact, "verified": float(np.mean([r.verified for r in results])),
               "mean_version_steps": float(np.mean([r.version_steps for r in results]))}
    line = (f"with up to {count} test-time versions: {100 * exact:.1f}% exact on the held-out puzzles at "
            f"{summary['mean_version_steps']:.2f} version-steps each")
    rescued = [r for r in results if r.verified and r.version > 0]
    if hard:
        tried = VersionedRun(live, count).solve(
            [live.encode(t) for t in read_puzzles(shipped_hard_examples(), live.codec)])
        rescued = [r for r in tried if r.verified and r.version > 0]
        summary |= {"hard_puzzles": len(tried), "hard_solved": sum(r.verified for r in tried)}
        line += (f"; {summary['hard_solved']} of {len(tried)} hard puzzles (magictour top 1465, which "
                 "sudoku-small fails as given) verified")
    console.print(line)
    if rescued and live.codec is not None:
        r = rescued[0]
        console.print(Panel(live.codec.render(r.puzzle, r.answer), expand=False,
                            title=f"{'hard ' if hard else ''}puzzle {r.index + 1}: [green]verified[/] in version "
                                  f"{r.version} ({r.versions_run} tried, {r.version_steps} version-steps)"))
    return summary


def _show_grids(console: Console, live: Solver, task: str, results: list[Result], labels: np.ndarray) -> None:
    from trm_edge.contract.held_out import exact

    codec = live.codec
    if codec is None:
        raise TrmEdgeError(f"the shipped model's task {task!r} has no codec: reinstall trm-edge")
    panels = []
    for r in results:
        right = bool(exact(r.answer[None], labels[r.index][None])[0])
        verdict = ("[green]verified" if r.verified else "[red]not verified") + (", solved" if right else ", wrong")
        title = f"puzzle {r.index + 1}: {r.steps} step{'s' if r.steps > 1 else ''} {verdict}"
        panels.append(Panel(codec.render(r.puzzle, r.answer), title=title, expand=False))
    console.print(Columns(panels))
    console.print(f"[dim]{codec.legend}[/]")


def _picture(path: Path, live: Solver, results: list[Result], labels: np.ndarray) -> Path | None:
    """The solved puzzles as a picture, where the task draws one (mazes; Sudoku grids read well as text)."""
    if live.codec is None:
        return None
    from trm_edge.contract.held_out import exact

    titles = [f"puzzle {r.index + 1}: {r.steps} steps, {'verified' if r.verified else 'not verified'}"
              + ("" if exact(r.answer[None], labels[r.index][None])[0] else ", wrong") for r in results]
    return live.codec.picture(path, [r.answer for r in results], titles)


def _accuracy_table(accuracy: _Accuracy, count: int, max_steps: int) -> Table:
    table = Table(title=f"accuracy on {count} held-out puzzles")
    for col in ("halting", "exact solves", "verified answers", "mean steps"):
        table.add_column(col, justify="right")
    policies = ((f"default: {accuracy.default}", accuracy.verified), ("the model's own (q_halt > 0)", accuracy.own),
                (f"label-free: {LABEL_FREE_DEFAULT}", accuracy.label_free))
    for name, row in policies:
        table.add_row(name, f"{100 * row['exact']:.1f}%", f"{round(row['verified'] * count)}/{count}",
                      f"{row['mean_steps']:.2f}")
    curve = accuracy.curve
    table.add_row(f"fixed {max_steps} steps (official loop)", f"{100 * curve['exact_by_step'][-1]:.1f}%",
                  f"{round(curve['verified_by_step'][-1] * count)}/{count}", f"{max_steps}")
    return table


def _speed_table(rows: list[dict[str, Any]], torch_rows: list[dict[str, Any]], default: str) -> Table:
    """Each batch: the runtime, every PyTorch peer timed; then the runtime's step against the fastest
    peer's (every slot full) apart from what halting saves (mean steps against the official 16)."""
    table = Table(title=f"speed on this machine (same weights; {cpu_name_and_flags()[0]})")
    for col in ("engine", "batch", "puzzles/s", "step ms", "mean steps", "step speed", "halting saves", "all told"):
        table.add_column(col, justify="right")
    for row in rows:
        fastest = _fastest(torch_rows, row["batch"])
        step_speed = fastest["step_ms"] / row["fixed_width_step_ms"]
        halting = fastest["steps"] / row["mean_steps"]
        table.add_row(f"{row['engine']}, {default}", str(row["batch"]), f"{row['puzzles_per_s']:.1f}",
                      f"{row['fixed_width_step_ms']:.1f}", f"{row['mean_steps']:.2f}", f"{step_speed:.2f}x",
                      f"{halting:.1f}x", f"{row['puzzles_per_s'] / fastest['puzzles_per_s']:.1f}x")
        for base in (r for r in torch_rows if r["batch"] == row["batch"]):
            table.add_row(f"{base['engine']}, official loop", str(base["batch"]), f"{base['puzzles_per_s']:.1f}",
                          f"{base['step_ms']:.1f}", str(base["steps"]), "", "", "")
    timed = sorted({r["peer"] for r in torch_rows})
    left_out = "torch.compile is left out here (compiling it takes longer than the demo on 2 cores): " \
        "python benchmarks/step_peers.py times the runtime against every peer, torch.compile included" \
        if not any("compile" in p for p in timed) else ""
    table.caption = ("step speed: the fastest PyTorch peer timed here over the runtime's step time, every slot full; "
                     "halting saves: 16 steps over the runtime's mean; all told: puzzles/s over that peer's"
                     + (f". {left_out}" if left_out else ""))
    return table


def _speed_puzzles(batch: int, available: int) -> int:
    # Enough puzzles for a steady figure without a long wait: 16 one at a time, else one full batch.
    return min(available, 16 if batch == 1 else batch)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
