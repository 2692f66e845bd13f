"""`trm-edge bench`: latency, throughput, steps and accuracy of an export on this machine.

Three views:
- one backend (`--backend BACKEND[:PRECISION]`, auto unless given) at each `--slots`: its step with
  every slot full (the figure to quote and compare), and apart from it the loop users embed,
  halting included, over `--puzzles`;
- several (`--backend openvino:bf16,ort-cpu`) or `--backend all`, every backend x precision
  available here: one row each, with a status saying why a combination is unavailable or was
  refused (the `yolo benchmark` habit);
- `--compare-torch CKPT[:PEERS]`: the PyTorch peers on the same weights and puzzles (eager fp32, eager
  bf16 autocast where the CPU has bf16, torch.compile), each step timed as benchmarks/step_peers.py
  times it, the runtime's own step in the same interleaved rounds (so its ratio against the fastest
  peer is step_peers' ratio), shown apart from what halting saves.

Without `--data` the puzzles are random tokens: the step times hold, the rest does not (said on the
console and in the JSON).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.console import Console

from trm_edge.app.cli_common import BACKEND_HELP, EXPORT_ARGUMENT, HALT, THREADS, console, err_console, solver_options
from trm_edge.app.commands.bench_tables import against_torch_table, matrix_table, rows_table
from trm_edge.atomic import atomic_write
from trm_edge.errors import TrmEdgeError
from trm_edge.output_paths import check_output_file
from trm_edge.runtime.options import SolverOptions, split_backend

# Said on the console and in the JSON whenever bench runs without --data.
RANDOM_TOKENS = ("no --data: timing random tokens, not puzzles. The step times hold; exact, verified, mean steps, "
                 "latency and puzzles/s mean nothing here (halting on noise): give --data PUZZLES.npz for those")
WRITES = {".json": "the figures", ".png": "a plot"}  # what -o writes, by suffix


def bench_command(
    model_dir: Path = EXPORT_ARGUMENT,
    backend: str = typer.Option("auto", "--backend", help=f"{BACKEND_HELP} bench also takes a comma-separated list "
                                "(openvino:bf16,ort-cpu:fp32), one row each, or all: every backend x precision "
                                "available here."),
    slots: str | None = typer.Option(
        None, "--slots", metavar="N,N,...", help="Slots (puzzles in flight) to time, comma-separated [1,16,64; an "
        "export --batch N: N, the only width it runs]."
    ),
    puzzles: int = typer.Option(256, "--puzzles", help="Puzzles per slots setting for the whole solve (random tokens "
                                "unless --data); the step is timed with every slot full whatever this is."),
    data: Path | None = typer.Option(None, "--data", help="Held-out puzzles (.npz, with labels: accuracy)."),
    halt: str = HALT,
    threads: int | None = THREADS,
    compare_torch: str | None = typer.Option(
        None, "--compare-torch", metavar="CKPT[:PEERS]", help="Also time the PyTorch peers on a checkpoint (a "
        ".safetensors file or shipped:NAME) running the official loop (fixed steps). PEERS: all (eager, "
        "eager-bf16 where the CPU has bf16, compile, compile-bf16; the default) or a comma-separated subset, e.g. "
        "shipped:sudoku-small:eager."
    ),
    output: list[Path] = typer.Option(
        [], "-o", "--output", metavar="FILE", help="Write the figures (NAME.json) or a plot (NAME.png: latency "
        "against slots, accuracy against steps); repeatable."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON on stdout instead of tables."),
) -> None:
    """The step with every slot full; then the whole solve: latency per puzzle (p50/p90/p99),
    throughput, mean steps and accuracy."""
    from trm_edge.contract.export_dir import read_metadata
    from trm_edge.contract.held_out import LabelledPuzzles, load_puzzles
    from trm_edge.runtime.export_task import task_codec

    for out in output:  # before the export is read
        if out.suffix not in WRITES:
            raise TrmEdgeError(f"-o {out}: bench writes {' or '.join(f'{s} ({w})' for s, w in WRITES.items())}")
        check_output_file(out, out.suffix, data)
    # --json: stdout holds the JSON alone; the tables and notes go to stderr, as wide as on stdout.
    shown = (err_console if err_console.is_terminal else Console(stderr=True, width=console.width)) if as_json \
        else console
    specs = backend_specs(backend)
    peers = peer_spec(compare_torch) if compare_torch is not None else None  # before any work
    if peers is not None and len(specs) > 1:
        raise TrmEdgeError("--compare-torch times one backend against PyTorch: give one --backend (or none: auto)")
    if puzzles < 1:
        raise TrmEdgeError(f"--puzzles must be at least 1, got {puzzles}")
    meta = read_metadata(model_dir)
    sizes = _sizes(slots, meta)
    if data is not None:
        held_out = load_puzzles(data, meta.model.seq_len, meta.model.vocab_size).head(puzzles)
        source: dict[str, Any] = {"source": str(data), "count": len(held_out)}
    else:
        rng = np.random.default_rng(0)
        inputs = rng.integers(1, meta.model.vocab_size, (puzzles, meta.model.seq_len), dtype=np.int32)
        held_out = LabelledPuzzles(inputs, None, np.zeros(puzzles, dtype=np.int32))
        source = {"source": "random tokens", "count": puzzles, "notice": RANDOM_TOKENS}
        shown.print(f"[yellow]note:[/] {RANDOM_TOKENS}", soft_wrap=True)
    base = solver_options(halt=halt, threads=threads)
    report: dict[str, Any] = {"model_dir": str(model_dir), "puzzles": source}
    if len(specs) > 1:
        report["matrix"] = matrix_rows(model_dir, held_out, sizes, base, specs, shown)
        shown.print(matrix_table(report["matrix"], str(model_dir)))
    else:
        # Each size opens as asked: under auto, what auto chooses at that width (remembered per width).
        # Against PyTorch the step is timed in the peers' interleaved rounds instead (`_torch_baseline`).
        options = base.with_settings(backend=specs[0][0], precision=specs[0][1])
        rows, env, solvers = engine_rows(model_dir, options, held_out, sizes, shown, time_step=peers is None)
        report |= {"environment": env, "rows": rows}
        if peers is not None:
            report["torch"], steps = _torch_baseline(*peers, held_out, sizes, threads, meta.source, solvers, shown)
            for row, size in zip(rows, sizes, strict=True):  # one row per size, in order
                row["step"] = steps[size]
            report["against_torch"] = against_torch(rows, report["torch"])
        shown.print(rows_table(report, str(model_dir)))
        if report.get("against_torch"):
            shown.print(against_torch_table(report["against_torch"]))
        shown.print(f"[dim]{json.dumps(env)}[/]")
        plots = any(out.suffix == ".png" for out in output)
        codec = task_codec(meta)
        if plots and (held_out.labels is not None or (codec is not None and codec.can_verify)):
            from trm_edge.runtime.calibrate import evaluate, record

            solver = solvers[max(sizes)]
            report["accuracy_by_step"] = evaluate(record(solver, held_out, solver.max_steps), held_out.labels,
                                                  solver.max_steps)
    for out in output:
        _write(out, report, str(model_dir))
        shown.print(f"wrote {out}")
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, default=_json_default) + "\n")


def _write(out: Path, report: dict[str, Any], model_dir: str) -> None:
    """One -o file: the figures as JSON, or the plot of the view bench ran."""
    if out.suffix == ".json":
        atomic_write(out, json.dumps(report, indent=2, default=_json_default))
        return
    from trm_edge.runtime.plots import plot_bench, plot_matrix

    if "matrix" in report:
        plot_matrix(out, report["matrix"], f"{model_dir}: backends and precisions here")
    else:
        env = report["environment"]
        plot_bench(out, report["rows"], report.get("accuracy_by_step"),
                   f"{model_dir} ({env['backend']} {env['precision']})")


def backend_specs(text: str) -> list[tuple[str, str]]:
    """--backend's (backend, precision) pairs: one, a comma-separated list, or all (every backend x
    precision the registry names)."""
    from trm_edge.runtime.backends.registry import matrix

    if text.strip() == "all":
        return matrix()
    specs = [split_backend(part.strip()) for part in text.split(",") if part.strip()]
    if not specs:
        raise TrmEdgeError("--backend needs a backend: BACKEND[:PRECISION], a comma-separated list of them, or all")
    return list(dict.fromkeys(specs))


def _sizes(slots: str | None, meta: Any) -> list[int]:
    """The slots settings asked for; a fixed-batch export's own batch, the one width it runs."""
    from trm_edge.runtime.solver import slots_for

    try:
        sizes = sorted({int(b) for b in (slots or "1,16,64").split(",") if b.strip()})
    except ValueError:
        raise TrmEdgeError(f"--slots takes comma-separated integers, got {slots!r}") from None
    if not sizes or min(sizes) < 1:
        raise TrmEdgeError("--slots needs at least one size >= 1")
    return sizes if meta.dynamic_batch else sorted({slots_for(meta, None if slots is None else size, "--slots")
                                                    for size in sizes})


def engine_rows(
    model_dir: Path, options: SolverOptions, held_out: Any, sizes: list[int], shown: Console, time_step: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[int, Any]]:
    """bench_batch at every size on one backend and precision (the step timed alone unless not
    `time_step`); (rows, environment, the solver of each row's slots)."""
    from rich.progress import track

    from trm_edge.runtime.bench import bench_batch, environment
    from trm_edge.runtime.solver import Solver

    rows, env, solvers = [], None, {}
    label = f"benchmarking {options.backend} {options.precision}"
    for size in track(sizes, description=label, console=shown, transient=True):
        solver = Solver.load(model_dir, options.with_settings(slots=size))
        rows.append(bench_batch(solver, held_out, time_step=time_step).__dict__ | {"engine": solver.engine})
        solvers[size] = solver  # by the size asked: rows and the peers' rounds look it up by that
        if env is None:
            env = environment(solver, options.threads)
            if solver.choice is not None and options.backend == "auto":
                env["chosen_because"] = solver.choice.why
    return rows, env or {}, solvers


def matrix_rows(model_dir: Path, held_out: Any, sizes: list[int], base: SolverOptions, specs: list[tuple[str, str]],
                shown: Console) -> list[dict[str, Any]]:
    """One row per backend x precision x slots that runs here; one row per combination that does
    not, with the reason (not installed, no such device, precision not native, failed its check)."""
    from trm_edge.export.format_table import format_run_by
    from trm_edge.runtime.solver import Solver

    out = []
    for backend, precision in specs:
        options = base.with_settings(backend=backend, precision=precision)
        try:
            Solver.load(model_dir, options.with_settings(slots=1))
        except TrmEdgeError as exc:
            failed = "failed its check" in str(exc) or "failed its validation" in str(exc)
            out.append({"backend": backend, "format": format_run_by(backend), "precision": precision,
                        "status": "failed validation" if failed else "unavailable", "reason": str(exc)})
            continue
        rows, env, _ = engine_rows(model_dir, options, held_out, sizes, shown)
        for row in rows:  # the format whose files it runs (auto: the backend it chose)
            out.append({"backend": env["backend"], "format": format_run_by(env["backend"]),
                        "precision": env["precision"], "status": "ok", **row})
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


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def peer_spec(text: str) -> tuple[Path, list[str]]:
    """--compare-torch CKPT[:PEERS]: the checkpoint (a file, or shipped:NAME: an unknown name is one
    line) and the peers to time (all: those worth timing here). The part after the last ':' is
    PEERS only where every name in it is a peer's, so shipped:NAME and C:\\ paths stay whole."""
    try:
        from trm_edge.app.torch_eval import PEERS, available_peers
    except ImportError:
        raise TrmEdgeError("--compare-torch needs torch: pip install 'trm-edge[torch]'") from None
    from trm_edge.shipped import checkpoint_path

    head, _, tail = text.rpartition(":")
    names = [n.strip() for n in tail.split(",")]
    if head and (tail == "all" or all(n in PEERS for n in names)):
        text = head
    else:
        names = ["all"]
    if names == ["all"]:
        names = [p.name for p in available_peers()]
    path = checkpoint_path(text)
    if not path.is_file():
        raise TrmEdgeError(f"--compare-torch {text}: no checkpoint file there; give a trm-edge .safetensors "
                           f"checkpoint or shipped:NAME, then :PEERS if you like (all, or some of {', '.join(PEERS)})")
    return path, names


def _torch_baseline(
    checkpoint: Path, names: list[str], held_out: Any, sizes: list[int], threads: int | None,
    exported_from: dict[str, Any], solvers: dict[int, Any], shown: Console,
) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """The peers' rows, and the runtime's step at each size (`solvers`: the solver of each) timed in
    the same interleaved rounds (torch_eval's `interleaved_steps`, as benchmarks/step_peers.py times
    it); a note where `checkpoint` is not the one the export was made from (`exported_from`: the
    export's source record), whose answers need not match the runtime's."""
    from trm_edge.app.torch_eval import torch_baseline
    from trm_edge.checkpoint import file_sha256
    from trm_edge.runtime.bench import full_slot_stepper

    if exported_from.get("sha256") not in (None, file_sha256(checkpoint)):
        shown.print(f"[yellow]note:[/] {checkpoint} is not the checkpoint this export was made from "
                    f"({exported_from.get('checkpoint')}, another sha256): the step times compare, the accuracy "
                    "columns do not", soft_wrap=True)

    def runtime(size: int) -> Any:
        return full_slot_stepper(solvers[size].backend, held_out.inputs, held_out.puzzle_identifiers, size)

    return torch_baseline(checkpoint, held_out, sizes, threads, names, warming=shown.status, runtime=runtime)
