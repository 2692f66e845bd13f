"""`trm-edge bench`: latency, throughput, steps and accuracy of an export on this machine.

Three views:
- one backend (auto or `--backend`) at each `--batch`: its step with every slot full (the figure
  to quote and compare), and apart from it the loop users embed, halting included, over `--puzzles`;
- `--matrix`: every backend x precision available here, one row each, with a status saying why a
  combination is unavailable or was refused (the `yolo benchmark` habit);
- `--compare-torch CKPT`: the PyTorch peers on the same weights and puzzles (eager fp32, eager bf16
  autocast where the CPU has bf16, torch.compile), each step timed as benchmarks/step_peers.py times
  it, the runtime's own step in the same interleaved rounds (so its ratio against the fastest peer is
  step_peers' ratio), shown apart from what halting saves.

Without `--data` the puzzles are random tokens: the step times hold, the rest does not (said on the
console and in the JSON).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.table import Table

from trm_edge.app.cli_common import BACKEND, HALT, PRECISION, THREADS, console
from trm_edge.app.commands.solve import _halt
from trm_edge.atomic import atomic_write
from trm_edge.errors import TrmEdgeError
from trm_edge.output_paths import check_output_file

# Said on the console and in the JSON whenever bench runs without --data.
RANDOM_TOKENS = ("no --data: timing random tokens, not puzzles. The step times hold; exact, verified, mean steps, "
                 "latency and puzzles/s mean nothing here (halting on noise): give --data PUZZLES.npz for those")


def bench_command(
    model_dir: Path = typer.Argument(..., help="Export directory (from trm-edge export)."),
    backend: str = BACKEND,
    precision: str = PRECISION,
    batch: str | None = typer.Option(
        None, "--batch", help="Batch sizes, comma-separated [1,16,64; an export --batch N: N, the only width it runs]."
    ),
    puzzles: int = typer.Option(256, "--puzzles", help="Puzzles per batch size for the whole solve (random tokens "
                                "unless --data); the step is timed with every slot full whatever this is."),
    data: Path | None = typer.Option(None, "--data", help="Held-out puzzles (.npz, with labels: accuracy)."),
    fixed_steps: int | None = typer.Option(None, "--fixed-steps", help="Run exactly N steps per puzzle."),
    halt: str = HALT,
    threads: int | None = THREADS,
    matrix: bool = typer.Option(False, "--matrix", help="Every backend x precision available here, one row each."),
    compare_torch: str | None = typer.Option(
        None, "--compare-torch", help="Checkpoint (a .safetensors file or shipped:NAME): also time the PyTorch peers "
        "running the official loop (fixed steps)."
    ),
    torch_peers: str = typer.Option(
        "all", "--torch-peers", help="With --compare-torch: all (eager, eager-bf16 where the CPU has bf16, compile, "
        "compile-bf16) or a comma-separated subset."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write the figures as JSON here."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a plot (latency vs batch, accuracy vs steps)."),
    versions: int = typer.Option(1, "--versions", help="Test-time versions per puzzle (see solve --versions)."),
) -> None:
    """The step with every slot full; then the whole solve: latency per puzzle (p50/p90/p99),
    throughput, mean steps and accuracy; with --versions N, the mean version-steps per puzzle too."""
    from trm_edge.contract.held_out import LabelledPuzzles, load_puzzles
    from trm_edge.runtime.solver import Solver

    for out, suffix in ((json_out, ".json"), (plot, ".png")):
        if out is not None:
            check_output_file(out, suffix, data)  # before the export is read
    checkpoint = _peer_checkpoint(compare_torch) if compare_torch is not None else None  # before any work
    sizes = _sizes(batch, model_dir)
    if puzzles < 1:
        raise TrmEdgeError(f"--puzzles must be at least 1, got {puzzles}")
    if matrix and (backend != "auto" or precision != "auto"):
        raise TrmEdgeError("--matrix tries every backend and precision itself: leave out --backend and --precision")
    policy = _halt(halt, fixed_steps)
    probe = Solver.load(model_dir, backend=backend, slots=1, halt=policy, threads=threads, precision=precision)
    if data is not None:
        held_out = load_puzzles(data, probe.seq_len, probe.vocab_size).head(puzzles)
        source: dict[str, Any] = {"source": str(data), "count": len(held_out)}
    else:
        rng = np.random.default_rng(0)
        inputs = rng.integers(1, probe.vocab_size, (puzzles, probe.seq_len), dtype=np.int32)
        held_out = LabelledPuzzles(inputs, None, np.zeros(puzzles, dtype=np.int32))
        source = {"source": "random tokens", "count": puzzles, "notice": RANDOM_TOKENS}
        console.print(f"[yellow]note:[/] {RANDOM_TOKENS}", soft_wrap=True)
    settings = {"halt": policy, "threads": threads, "versions": versions}
    report: dict[str, Any] = {"model_dir": str(model_dir), "puzzles": source}
    if matrix:
        report["matrix"] = matrix_rows(model_dir, held_out, sizes, settings)
        console.print(matrix_table(report["matrix"], str(model_dir)))
    else:
        # Each size opens as asked: under auto, what auto chooses at that width (remembered per width).
        # Against PyTorch the step is timed in the peers' interleaved rounds instead (`_torch_baseline`).
        rows, env, solvers = engine_rows(model_dir, backend, precision, held_out, sizes, settings,
                                         time_step=checkpoint is None)
        report |= {"environment": env, "rows": rows}
        if checkpoint is not None:
            report["torch"], steps = _torch_baseline(checkpoint, held_out, sizes, threads, torch_peers,
                                                     probe.meta.source, solvers)
            for row, size in zip(rows, sizes, strict=True):  # one row per size, in order
                row["step"] = steps[size]
            report["against_torch"] = against_torch(rows, report["torch"])
        console.print(rows_table(report, str(model_dir)))
        if report.get("against_torch"):
            console.print(against_torch_table(report["against_torch"]))
        console.print(f"[dim]{json.dumps(env)}[/]")
        if plot is not None and (held_out.labels is not None or probe.verifier is not None):
            from trm_edge.runtime.calibrate import evaluate, record

            solver = Solver.load(model_dir, backend=probe.backend_name, slots=max(sizes), halt=policy,
                                 threads=threads, precision=probe.precision)
            report["accuracy_by_step"] = evaluate(record(solver, held_out, solver.max_steps), held_out.labels,
                                                  solver.max_steps)
    if json_out is not None:
        atomic_write(json_out, json.dumps(report, indent=2, default=_json_default))
        console.print(f"wrote {json_out}")
    if plot is not None:
        from trm_edge.runtime.plots import plot_bench, plot_matrix

        if matrix:
            plot_matrix(plot, report["matrix"], f"{model_dir}: every backend and precision here")
        else:
            plot_bench(plot, report["rows"], report.get("accuracy_by_step"),
                       f"{model_dir} ({report['environment']['backend']} {report['environment']['precision']})")
        console.print(f"wrote {plot}")


def _sizes(batch: str | None, model_dir: Path) -> list[int]:
    """The batch sizes asked for; a fixed-batch export's own batch, the one width it runs."""
    from trm_edge.contract.export_dir import read_metadata
    from trm_edge.runtime.solver import slots_for

    try:
        sizes = sorted({int(b) for b in (batch or "1,16,64").split(",") if b.strip()})
    except ValueError:
        raise TrmEdgeError(f"--batch takes comma-separated integers, got {batch!r}") from None
    if not sizes or min(sizes) < 1:
        raise TrmEdgeError("--batch needs at least one size >= 1")
    meta = read_metadata(model_dir)
    return sizes if meta.dynamic_batch else sorted({slots_for(meta, None if batch is None else size, "--batch")
                                                    for size in sizes})


def engine_rows(
    model_dir: Path, backend: str, precision: str, held_out: Any, sizes: list[int], settings: dict[str, Any],
    time_step: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[int, Any]]:
    """bench_batch at every size on one backend and precision (the step timed alone unless not
    `time_step`); (rows, environment, the solver of each row's batch)."""
    from rich.progress import track

    from trm_edge.runtime.bench import bench_batch, environment
    from trm_edge.runtime.solver import Solver

    rows, env, solvers = [], None, {}
    for size in track(sizes, description=f"benchmarking {backend} {precision}", console=console, transient=True):
        solver = Solver.load(model_dir, backend=backend, slots=size, halt=settings["halt"],
                             threads=settings["threads"], precision=precision)
        rows.append(bench_batch(solver, held_out, versions=settings["versions"], time_step=time_step).__dict__
                    | {"engine": solver.engine})
        solvers[size] = solver  # by the size asked: rows and the peers' rounds look it up by that
        if env is None:
            env = environment(solver, settings["threads"])
            if solver.choice is not None and backend == "auto":
                env["chosen_because"] = solver.choice.why
    return rows, env or {}, solvers


def matrix_rows(model_dir: Path, held_out: Any, sizes: list[int], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per backend x precision x batch that runs here; one row per combination that does
    not, with the reason (not installed, no such device, precision not native, failed its check)."""
    from trm_edge.export.format_table import format_run_by
    from trm_edge.runtime.backends.registry import matrix
    from trm_edge.runtime.solver import Solver

    out = []
    for backend, precision in matrix():  # each backend at each precision its registry entry names
        written_as = format_run_by(backend)  # the export format whose files it runs
        try:
            Solver.load(model_dir, backend=backend, slots=1, halt=settings["halt"], threads=settings["threads"],
                        precision=precision)
        except TrmEdgeError as exc:
            failed = "failed its check" in str(exc) or "failed its validation" in str(exc)
            out.append({"backend": backend, "format": written_as, "precision": precision,
                        "status": "failed validation" if failed else "unavailable", "reason": str(exc)})
            continue
        rows, env, _ = engine_rows(model_dir, backend, precision, held_out, sizes, settings)
        for row in rows:
            out.append({"backend": env["backend"], "format": written_as, "precision": env["precision"], "status": "ok",
                        **row})
    return out


def against_torch(rows: list[dict[str, Any]], torch_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per batch: the runtime's step against the fastest PyTorch peer's (same batch), and apart from
    it what halting saves (the peers run every puzzle the model's full steps)."""
    from trm_edge.app.torch_eval import fastest_peer

    out = []
    for row in rows:
        peer = fastest_peer(torch_rows, row["batch"])
        if peer is None:
            continue
        step_ratio = peer["step_ms"] / row["step"]["ms"]  # both every slot full, at this batch
        halting = peer["steps"] / row["mean_steps"] if row["mean_steps"] else float("nan")
        out.append({"batch": row["batch"], "fastest_peer": peer["engine"], "peer_step_ms": peer["step_ms"],
                    "runtime_step_ms": row["step"]["ms"], "step_ratio": round(step_ratio, 3),
                    "halting_gain": round(halting, 3),
                    "puzzles_per_s_ratio": round(row["puzzles_per_s"] / peer["puzzles_per_s"], 3)})
    return out


def rows_table(report: dict[str, Any], model_dir: str) -> Table:
    env = report["environment"]
    table = Table(title=f"trm-edge bench: {model_dir} ({env['backend']}, {env['precision']}, halting {env['halting']})")
    for col in ("engine", "batch", "step ms, every slot full", "puzzles/s", "latency p50/p90/p99 ms", "mean steps",
                "exact", "verified share"):
        table.add_column(col, justify="right")
    for r in report["rows"]:
        steps = f"{r['mean_steps']:.2f}"
        if r["extra"].get("versions"):
            steps += f" ({r['extra']['mean_version_steps']:.1f} version-steps)"
        table.add_row(f"{env['backend']} {env['precision']}", str(r["batch"]), f"{r['step']['ms']:.2f}",
                      f"{r['puzzles_per_s']:.1f}", _latency(r["latency_ms"]), steps, _pct(r["exact"]),
                      _pct(r["verified"]))
    for r in report.get("torch", []):
        table.add_row(r["engine"], str(r["batch"]), f"{r['step_ms']:.2f}", f"{r['puzzles_per_s']:.1f}", "-",
                      str(r["steps"]), _pct(r["exact"]), "-")
    table.caption = (f"step: the median of one backend step with all batch slots full; the rest over "
                     f"{report['puzzles']['count']} puzzles ({report['puzzles']['source']}), halting included: a "
                     f"solve's own steps run fewer slots as puzzles halt (JSON: loop)")
    return table


def against_torch_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="against the fastest PyTorch peer: the step itself, and halting apart from it")
    for col in ("batch", "fastest peer", "its step ms", "runtime step ms", "step speed", "halting saves",
                "puzzles/s, all told"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["batch"]), r["fastest_peer"], f"{r['peer_step_ms']:.2f}", f"{r['runtime_step_ms']:.2f}",
                      f"{r['step_ratio']:.2f}x", f"{r['halting_gain']:.1f}x fewer steps",
                      f"{r['puzzles_per_s_ratio']:.1f}x")
    return table


def matrix_table(rows: list[dict[str, Any]], model_dir: str) -> Table:
    table = Table(title=f"trm-edge bench --matrix: {model_dir}")
    # The step with every slot full is the figure that compares backends and precisions whatever the
    # puzzles (the rest depends on halting): shown, since timing it costs up to ~3 s a row.
    for col in ("backend", "format", "precision", "status", "batch", "step ms, every slot full", "exact", "verified",
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


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _peer_checkpoint(text: str) -> Path:
    """--compare-torch's checkpoint: a file, or shipped:NAME (an unknown name is one line)."""
    from trm_edge.shipped import checkpoint_path

    path = checkpoint_path(text)
    if not path.is_file():
        raise TrmEdgeError(f"--compare-torch {text}: no checkpoint file there; give a trm-edge .safetensors "
                           "checkpoint or shipped:NAME")
    return path


def _torch_baseline(
    checkpoint: Path, held_out: Any, sizes: list[int], threads: int | None, peers: str, exported_from: dict[str, Any],
    solvers: dict[int, Any],
) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """The peers' rows, and the runtime's step at each size (`solvers`: the solver of each) timed in
    the same interleaved rounds (torch_eval's `interleaved_steps`, as benchmarks/step_peers.py times
    it); a note where `checkpoint` is not the one the export was made from (`exported_from`: the
    export's source record), whose answers need not match the runtime's."""
    try:
        from trm_edge.app.torch_eval import PEERS, available_peers, torch_baseline
        from trm_edge.checkpoint import file_sha256
    except ImportError:
        raise TrmEdgeError("--compare-torch needs torch: pip install 'trm-edge[torch]'") from None
    names = [p.name for p in available_peers()] if peers == "all" else [n.strip() for n in peers.split(",")]
    unknown = [n for n in names if n not in PEERS]
    if unknown or not names:
        raise TrmEdgeError(f"--torch-peers {peers!r}: give all or some of {', '.join(PEERS)}")
    if exported_from.get("sha256") not in (None, file_sha256(checkpoint)):
        console.print(f"[yellow]note:[/] {checkpoint} is not the checkpoint this export was made from "
                      f"({exported_from.get('checkpoint')}, another sha256): the step times compare, the accuracy "
                      "columns do not", soft_wrap=True)
    from trm_edge.runtime.bench import full_slot_stepper

    def runtime(size: int) -> Any:
        return full_slot_stepper(solvers[size].backend, held_out.inputs, held_out.puzzle_identifiers, size)

    return torch_baseline(checkpoint, held_out, sizes, threads, names, warming=console.status, runtime=runtime)
