"""Where a CPU step's time goes, and what OpenVINO's options change.

    python benchmarks/step_profile.py [--batches 1,16,64] [--rounds 7] [--json step_profile.json]

On the shipped Sudoku model (a plain export, as a user makes it):
1. OpenVINO's per-op counters (PERF_COUNT) for one step at each precision this CPU runs natively:
   time per op type and the kernel that ran it (so a bf16 step that is slower than fp32 shows why).
2. OpenVINO's options, timed in interleaved rounds against what the runtime runs (LATENCY hint,
   dynamic batch): static shapes at the batch, two streams each running half the batch, one thread,
   and ONNX Runtime's step beside them.
3. Whether static shapes keep a puzzle's answer independent of its batch: the same 64 held-out
   puzzles looped 16 steps through steps compiled for 1 row and for 16 rows (and the dynamic
   shape), answers compared (the runtime promises that an answer does not depend on the batch).
4. The loop's own cost: `Solver.solve` on 256 held-out puzzles x 16 fixed steps, wall time against
   the time inside the backend's steps (halting, verification, refills and Python per step).
Name the CPU beside every figure; only ratios from one run compare (speed drifts on a shared VM).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from harness import machine
from rich.console import Console

from trm_edge.contract.export_dir import read_metadata
from trm_edge.contract.held_out import load_puzzles
from trm_edge.export.exporter import export_onnx
from trm_edge.precisions import LOWERED, TABLE
from trm_edge.runtime.backends.openvino import native_precisions
from trm_edge.runtime.backends.openvino_profile import profile_step
from trm_edge.runtime.backends.openvino_rewrites import ONE, route_left_weights
from trm_edge.runtime.backends.registry import create_backend
from trm_edge.runtime.bench import interleaved_seconds
from trm_edge.runtime.solver import Solver
from trm_edge.shipped import shipped_checkpoint, shipped_heldout


def _compiled(export_dir: Path, precision: str, config: dict[str, Any], static_batch: int | None = None) -> Any:
    """The step compiled as the backend compiles it (its load-time rewrite included), with `config`."""
    import openvino as ov

    frontend = ov.frontend.FrontEndManager().load_by_framework("onnx")
    model = frontend.convert(frontend.load(str(export_dir / "step.onnx")))
    if precision in LOWERED:
        route_left_weights(model, ov)
    if static_batch is not None:
        model.reshape({p.get_any_name(): [static_batch if d.is_dynamic else d.get_length()
                                          for d in p.get_partial_shape()] for p in model.inputs})
    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": TABLE[precision].openvino_hint, **config})


def _feeds(compiled: Any, batch: int) -> dict[str, np.ndarray]:
    import openvino as ov

    rng = np.random.default_rng(0)
    feeds = {}
    for port in compiled.inputs:
        shape = [batch if d.is_dynamic else d.get_length() for d in port.get_partial_shape()]
        feeds[port.get_any_name()] = (np.zeros(shape, bool) if port.get_element_type() == ov.Type.boolean
                                      else np.ones((), np.float32) if port.get_any_name() == ONE
                                      else (0.1 * rng.standard_normal(shape)).astype(np.float32))
    return feeds


def op_profile(export_dir: Path, precision: str, batch: int) -> dict[str, Any]:
    """One step's per-op-type time (ms, share) and kernels, from OpenVINO's counters, compiled as
    the backend compiles it; the share of fp32 product kernels in a lowered step."""
    meta = read_metadata(export_dir)
    tokens = load_puzzles(shipped_heldout(), 81).inputs[:64] if meta.model.seq_len == 81 else None
    profile = profile_step(export_dir, meta, precision, batch, tokens=tokens)
    fp32_products = sum(r.ms for r in profile.products() if "f32" in r.kernel) / (profile.total_ms or 1.0)
    return {"precision": precision, "batch": batch, "total_ms": round(profile.total_ms, 2),
            "fp32_product_share": round(fp32_products, 4), "reorder_share": round(profile.share("Reorder"), 4),
            "ops": [o for o in profile.by_op() if o["share"] >= 0.005]}


def option_calls(export_dir: Path, precision: str, batch: int) -> dict[str, Callable[[], object]]:
    """name -> one step at `batch`, for each OpenVINO option tried (and ONNX Runtime's step)."""
    calls: dict[str, Callable[[], object]] = {}
    latency = _compiled(export_dir, precision, {"PERFORMANCE_HINT": "LATENCY"})
    feeds = _feeds(latency, batch)
    request = latency.create_infer_request()
    calls[f"openvino {precision}: LATENCY, dynamic batch (what runs)"] = lambda: request.infer(feeds)
    static = _compiled(export_dir, precision, {"PERFORMANCE_HINT": "LATENCY"}, static_batch=batch)
    static_request = static.create_infer_request()
    calls[f"openvino {precision}: static shape at {batch}"] = lambda: static_request.infer(feeds)
    one = _compiled(export_dir, precision, {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 1})
    one_request = one.create_infer_request()
    calls[f"openvino {precision}: one thread"] = lambda: one_request.infer(feeds)
    if batch >= 2:
        streams = _compiled(export_dir, precision, {"NUM_STREAMS": 2})
        requests = [streams.create_infer_request() for _ in range(2)]
        half = batch // 2
        halves = [{k: v if v.ndim == 0 else v[:half] for k, v in feeds.items()},
                  {k: v if v.ndim == 0 else v[half:] for k, v in feeds.items()}]

        def two_streams() -> None:
            for r, f in zip(requests, halves, strict=True):
                r.start_async(f)
            for r in requests:
                r.wait()

        calls[f"openvino {precision}: 2 streams, half the batch each"] = two_streams
    return calls


def options_table(export_dir: Path, batches: list[int], rounds: int, console: Console) -> list[dict[str, Any]]:
    meta = read_metadata(export_dir)
    rows = []
    for batch in batches:
        calls: dict[str, Callable[[], object]] = {}
        ort = create_backend("ort-cpu", export_dir, meta, batch, None, "fp32")
        ort.set_inputs(np.ones((batch, meta.model.seq_len), np.int32), np.zeros(batch, np.int32))
        calls["ort-cpu fp32 (tiles of 16)"] = lambda b=ort, n=batch: b.step(np.zeros(n, dtype=bool))
        for precision in native_precisions("CPU"):
            if precision == "fp16":
                continue  # OpenVINO 2026.4 picks bf16 first where both are native; fp16 is not a candidate then
            calls.update(option_calls(export_dir, precision, batch))
        for call in calls.values():
            call()
        times = interleaved_seconds(calls, rounds)
        base = statistics.median(times[next(n for n in calls if "what runs" in n and "fp32" in n)])
        for name, values in times.items():
            ms = 1e3 * statistics.median(values)
            ratio = 1e3 * base / ms
            rows.append({"batch": batch, "variant": name, "step_ms": round(ms, 2), "vs_openvino_fp32": round(ratio, 3)})
            console.print(f"batch {batch:3}  {name:58} {ms:8.1f} ms  {ratio:5.2f}x OpenVINO fp32", highlight=False)
    return rows


def static_shape_answers(export_dir: Path, precision: str, rows: int = 64, steps: int = 16) -> dict[str, Any]:
    """Answers after `steps` of the same puzzles through steps compiled at 1 row, at 16 rows and
    with the dynamic batch: how many puzzles' answers differ from the dynamic step's."""
    meta = read_metadata(export_dir)
    tokens = load_puzzles(shipped_heldout(), 81).inputs[:rows]
    init = create_backend("openvino", export_dir, meta, rows, None, precision)
    init.set_inputs(tokens, np.zeros(rows, np.int32))
    x_emb = init.x_emb.copy()

    def looped(width: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(z_H after the first step, answers after `steps`) of every puzzle."""
        compiled = _compiled(export_dir, precision, {"PERFORMANCE_HINT": "LATENCY"}, static_batch=width)
        request = compiled.create_infer_request()
        answers, first = [], []
        for start in range(0, rows, width or rows):
            span = slice(start, start + (width or rows))
            z_h = z_l = np.zeros_like(x_emb[span])
            reset = np.ones(len(x_emb[span]), dtype=bool)
            for k in range(steps):
                feeds = {"x_emb": x_emb[span], "z_H": z_h, "z_L": z_l, "reset": reset,
                         **({ONE: np.ones((), np.float32)} if precision in LOWERED else {})}
                out = request.infer(feeds)
                z_h, z_l = out["z_H_next"].copy(), out["z_L_next"].copy()
                reset = np.zeros_like(reset)
                if k == 0:
                    first.append(z_h)
            answers.append(out["answer"].copy())
        return np.concatenate(first), np.concatenate(answers)

    state, dynamic = looped(None)
    out: dict[str, Any] = {"precision": precision, "puzzles": rows, "steps": steps}
    for width in (1, 16):
        state_w, answers_w = looped(width)
        out[f"state_diff_static_{width}"] = float(np.abs(state_w - state).max())  # after one step
        out[f"differ_static_{width}"] = int((answers_w != dynamic).any(axis=1).sum())
    return out


def loop_cost(export_dir: Path, batch: int, puzzles: int, console: Console) -> dict[str, Any]:
    """Wall time of Solver.solve against the time inside the backend's steps, for what auto runs."""
    held_out = load_puzzles(shipped_heldout(), 81).head(puzzles)
    solver = Solver.load(export_dir, slots=batch, halt="fixed:16")
    inside: list[float] = []
    solver.step_timer = inside.append
    start = time.perf_counter()
    solver.solve(list(held_out.inputs))
    wall = time.perf_counter() - start
    out = {"backend": solver.engine, "batch": batch, "puzzles": puzzles,
           "steps": len(inside), "wall_s": round(wall, 3), "in_steps_s": round(sum(inside), 3),
           "loop_ms_per_step": round(1e3 * (wall - sum(inside)) / len(inside), 3),
           "loop_share": round(1 - sum(inside) / wall, 4)}
    console.print(f"loop ({out['backend']}, batch {batch}): {out['loop_ms_per_step']} ms per step outside the "
                  f"backend, {100 * out['loop_share']:.1f}% of the run", highlight=False)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,16,64")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path, default=Path("step_profile.json"))
    args = parser.parse_args()
    console = Console()
    batches = [int(b) for b in args.batches.split(",")]
    cpu = machine()
    console.print(f"CPU: {cpu}")
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = export_onnx(shipped_checkpoint(), Path(tmp) / "export", "fp32").directory
        profiles = [op_profile(export_dir, p, b) for p in native_precisions("CPU") if p != "fp16" for b in batches]
        for prof in profiles:
            top = ", ".join(f"{o['op']} {o['ms']} ms ({100 * o['share']:.0f}%, {'/'.join(o['kernels'])})"
                            for o in prof["ops"][:4])
            console.print(f"{prof['precision']} batch {prof['batch']}: {prof['total_ms']} ms: {top}", highlight=False)
        options = options_table(export_dir, batches, args.rounds, console)
        determinism = [static_shape_answers(export_dir, p) for p in native_precisions("CPU") if p != "fp16"]
        for row in determinism:
            console.print(f"static shapes, {row['precision']}: of {row['puzzles']} puzzles after {row['steps']} steps, "
                          f"{row['differ_static_1']} answers differ from the dynamic step's at 1 row, "
                          f"{row['differ_static_16']} at 16 rows (after one step the state differs by "
                          f"{row['state_diff_static_1']:.2g} / {row['state_diff_static_16']:.2g})", highlight=False)
        loops = [loop_cost(export_dir, b, 256, console) for b in batches if b > 1]
    args.json.write_text(json.dumps({"cpu": cpu, "profiles": profiles, "options": options,
                                     "static_shape_answers": determinism, "loop": loops}, indent=2))
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
