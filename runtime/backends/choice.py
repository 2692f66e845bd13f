"""Which backend and precision `auto` means for this export on this machine, and opening it.

On a GPU: a native TensorRT engine built here, else ONNX Runtime's TensorRT or CUDA provider, at
the export's precision. On a CPU, by measurement, not by a rule (which backend is faster depends
on the model as much as on the CPU: ONNX Runtime's fp32 step beats OpenVINO's for the small
Sudoku model on a Zen 3, OpenVINO's wins at ARC's size): every candidate that loads, and whose
lower precision passes the check in precision_check.py, runs a few steps at the width the solver
starts with, and the fastest is kept. The outcome, with its figures and the check, is remembered
in the export directory (choice_cache.py), so later loads open the choice directly.

A lower precision is a candidate only where the hardware runs it natively and the export kept
real validation puzzles to check it on. When auto passes over such a candidate, the load says so
in one line with the reason and the fix (`notes`; Solver.load warns, the commands print it).

The candidates come from the registry alone (`BackendEntry.runs`: the export's step, a lowered
precision, the int8 step, a step compiled for the one width it runs). They are timed in
interleaved rounds, and timed again while the fastest two lie within each other's spread or a
candidate's spread is large, so one busy moment on the machine does not decide for good.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from trm_edge.contract.metadata import ExportMetadata
from trm_edge.contract.validation_file import random_puzzles, read_validation_puzzles
from trm_edge.errors import TrmEdgeError
from trm_edge.precisions import RUNTIME_PRECISIONS as PRECISIONS
from trm_edge.runtime.backends.base import NO_INT8_STEP, Backend
from trm_edge.runtime.backends.choice_cache import (
    CachedChoice,
    choice_key,
    read_cached_choice,
    usable_cores,
    write_cached_choice,
)
from trm_edge.runtime.backends.precision_check import check_precision
from trm_edge.runtime.backends.registry import (
    BACKENDS,
    BackendEntry,
    create_backend,
    entry,
    fixed_batch_of,
    gpu_backend,
    initial_width,
)
from trm_edge.runtime.backends.timing import MEASURING_STATUS, time_steps

TIMED_WIDTH = 16  # candidates are timed at up to this many slots
# A step compiled for the one width the solver runs is weighed where that width is at most this:
# static shapes paid 1.3x at batch 1 and nothing at 16 or 64 (OpenVINO bf16, Zen 4: step_profile.py).
STATIC_WIDTHS_UP_TO = 4


@dataclass(frozen=True)
class Choice:
    """A backend and precision to try (with a step compiled for one width, where `static_width`),
    and why (what `doctor` and `bench` report)."""

    backend: str
    precision: str
    why: str
    static_width: int | None = None
    streams: int | None = None  # the batch split over this many requests at once (one per share of the cores)
    float_precision: str | None = None  # an int8 step whose float parts run lowered to this

    @property
    def computes_in(self) -> str:
        """The precision in words: 'bf16', 'int8', 'int8+bf16' (an int8 step, its float parts in bf16)."""
        return self.precision + (f"+{self.float_precision}" if self.float_precision else "")

    @property
    def label(self) -> str:
        return (f"{self.backend} {self.computes_in}" + (f" static:{self.static_width}" if self.static_width else "")
                + (f" streams:{self.streams}" if self.streams else ""))

    @property
    def step(self) -> tuple[str, str, str | None]:
        """What computes the answers (its forms aside): what a precision check holds."""
        return self.backend, self.precision, self.float_precision


def backend_choices(name: str, export_dir: Path, meta: ExportMetadata, precision: str = "auto",
                    static_width: int | None = None, streams: int | None = None) -> list[Choice]:
    """The candidates for `name` and `precision`: one when both are explicit (or on a GPU, where
    nothing is timed); for auto on a CPU every variant that could be the fastest, lower first (and
    each again compiled for `static_width`, and run in `streams`, where the backend can)."""
    if precision not in PRECISIONS:
        raise TrmEdgeError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    has_int8 = meta.int8_step is not None
    if name == "auto":
        gpu = gpu_backend(export_dir, meta)
        if gpu is None:
            return cpu_choices(meta.precision, precision, has_int8, static_width if meta.dynamic_batch else None,
                               streams, frozenset(meta.programs))
        found = backend_variants(gpu, meta.precision, precision, has_int8)
        if not found:
            raise TrmEdgeError(_cannot_run(gpu, meta, precision))
        # The last variant is the export's own precision (or the int8 step, asked for by name).
        return [Choice(gpu, found[-1].precision, "a GPU backend that works here")]
    found = backend_variants(name, meta.precision, precision, has_int8)
    if not found:
        raise TrmEdgeError(_cannot_run(name, meta, precision))
    if precision != "auto":
        return [Choice(name, precision, "asked for")]
    return found + _twins(found, static_width if meta.dynamic_batch else None, streams)


def backend_variants(name: str, export_precision: str, precision: str = "auto", has_int8: bool = False
                     ) -> list[Choice]:
    """Every way backend `name` can run a step of an export made in `export_precision` at
    `precision` (auto: any), lower precisions first; none where it cannot. The variants are

    - the export's int8 step, on a backend that runs one (the registry's `runs_int8`) where the
      export has it (`has_int8`); auto weighs it only on a CPU, where candidates are timed; on a
      lowering backend also with its float parts in the first precision the device runs natively
      (`int8+bf16`);
    - a lower precision the backend lowers to inside an fp32 graph (`lowered_precisions`: OpenVINO
      where the CPU runs bf16 natively), the first it names under auto, the one asked for otherwise;
    - the export's own precision (a lowering backend compiles fp32 graphs only).
    """
    found = entry(name)
    variants = []
    native = found.load().lowered_precisions(name)[:1] if found.lowers else []
    device = name.partition(":")[2] or "this CPU"
    if _int8_variant(found, precision, has_int8):
        variants.append(Choice(name, "int8", f"the export's int8 step on {name}"))
        variants += [Choice(name, "int8", f"the export's int8 step on {name}, its float parts in {p} ({device} runs "
                            f"{p} natively)", float_precision=p) for p in native]
    if found.lowers and export_precision == "fp32" and precision not in ("fp32", "int8"):
        lower = native if precision == "auto" else [precision]
        variants += [Choice(name, p, f"{device} runs {p} natively ({name} lowers it)") for p in lower]
    if precision in ("auto", export_precision) and (export_precision == "fp32" or not found.lowers):
        variants.append(Choice(name, export_precision, f"{name} at the export's {export_precision}"))
    return variants


def _twins(choices: list[Choice], static_width: int | None, streams: int | None) -> list[Choice]:
    """Each candidate again with its step compiled for `static_width`, and again run in `streams`,
    where its backend can (the registry's `runs`)."""
    twins = []
    if static_width is not None:
        twins += [replace(c, static_width=static_width, why=f"{c.why}, compiled for {static_width} slots")
                  for c in choices if entry(c.backend).runs_static]
    if streams is not None:
        twins += [replace(c, streams=streams, why=f"{c.why}, the batch split over {streams} streams")
                  for c in choices if entry(c.backend).runs_streams and entry(c.backend).runs_on == "cpu"
                  and not c.backend.partition(":")[2]]
    return twins


def cpu_choices(export_precision: str = "fp32", precision: str = "auto", has_int8: bool = False,
                static_width: int | None = None, streams: int | None = None,
                programs: frozenset[str] = frozenset()) -> list[Choice]:
    """What auto considers on a CPU: the variants of every CPU backend of the registry usable here
    (each again compiled for `static_width`, and run in `streams`, where the backend can; a backend
    of a phone runtime's programs where the export holds them, `programs`), the lower precisions
    (which must pass the precision check) first."""
    choices = []
    for found in (e for e in BACKENDS.values() if e.runs_on == "cpu"):
        if found.program and found.name not in programs:
            continue
        try:
            if found.load().unusable(found.name) is not None:
                continue
        except ImportError:
            continue
        variants = backend_variants(found.name, export_precision, precision, has_int8)
        choices += variants + _twins(variants, static_width, streams)
    if not choices:
        if precision != "auto":
            raise TrmEdgeError(f"no CPU backend here runs {precision} for a {export_precision} export: leave "
                               "the precision auto (--backend without :PRECISION)")
        raise TrmEdgeError("no runtime backend is installed: pip install 'trm-edge[cpu]' (ONNX Runtime) or "
                           "'trm-edge[openvino]'")
    return sorted(choices, key=lambda c: c.precision == export_precision)  # stable: registry order within


def _int8_variant(found: BackendEntry, precision: str, has_int8: bool) -> bool:
    """Whether backend `found` runs the export's int8 step for `precision`: asked for, or weighed
    under auto on a CPU (where candidates are timed; a GPU takes the export's precision)."""
    return found.runs_int8 and has_int8 and (precision == "int8" or (precision == "auto" and found.runs_on == "cpu"))


def _cannot_run(name: str, meta: ExportMetadata, precision: str) -> str:
    """Why backend `name` has no variant for `precision` on this export, and what to do instead."""
    if precision == "int8":
        if meta.int8_step is None:
            return NO_INT8_STEP
        runs = ", ".join(e.name for e in BACKENDS.values() if e.runs_int8)
        return f"{name} does not run the export's int8 step: use --backend with one of {runs}"
    if meta.precision != "fp32" and entry(name).lowers:
        return (f"{name} runs fp32 exports (it lowers the precision inside its compiled model); this export is "
                f"{meta.precision}: export fp32 for it")
    return (f"{name} runs the precision this export was made in ({meta.precision}): for {precision} on a CPU use "
            f"--backend openvino (where the CPU runs it natively), or export --precision {precision} for a GPU")


def _one_candidate(name: str, export_dir: Path, meta: ExportMetadata, precision: str) -> bool:
    """Whether there is nothing to choose, measure or check: auto on a GPU; a named backend at the
    export's own precision, or with one variant only (neither lowering nor weighing an int8 step).
    Decided without listing the variants, which imports OpenVINO to ask for native precisions."""
    if name == "auto":
        return gpu_backend(export_dir, meta) is not None
    found = entry(name)
    if precision == meta.precision or (precision == "int8" and found.runs_int8):
        return True  # an int8 step asked for by name runs as asked: export validated it
    return not found.lowers and not found.runs_static and not _int8_variant(found, precision,
                                                                             meta.int8_step is not None)


@dataclass
class Opened:
    backend: Backend
    choice: Choice
    notes: list[str] = field(default_factory=list)  # a faster-looking candidate passed over: why, and the fix
    step_ms: dict[str, float] = field(default_factory=dict)  # each candidate timed (median ms per step)
    spread_ms: dict[str, float] = field(default_factory=dict)  # ... and the interquartile range of its steps
    checks: list[str] = field(default_factory=list)  # each lower precision's check that passed
    remembered: bool = False  # opened from the export's cached choice
    timed_width: int = 0  # the slots the candidates were timed at


def timing_width(width: int, meta: ExportMetadata | None = None) -> int:
    """The width candidates are timed at (and the choice remembered for): the solver's starting
    width, as a power of two, at most TIMED_WIDTH (wider batches run as calls of about that many
    rows on ONNX Runtime anyway); a fixed-batch export's batch, the one width it runs."""
    if meta is not None and not meta.dynamic_batch:
        return fixed_batch_of(meta)
    return min(TIMED_WIDTH, 1 << max(0, width - 1).bit_length())


def streams_for(width: int, threads: int | None) -> int | None:
    """How many streams a candidate that splits the batch is weighed with: one per usable core (or
    per thread asked for), where the solver starts with two slots or more."""
    cores = min(len(usable_cores()), threads or 1 << 30)
    return cores if cores > 1 and width > 1 else None


def static_width_for(width: int, meta: ExportMetadata) -> int | None:
    """The width a step compiled for one width is weighed at: the solver's starting width, where
    the candidates are timed at exactly it and it is small enough to pay (STATIC_WIDTHS_UP_TO)."""
    if not meta.dynamic_batch or width > STATIC_WIDTHS_UP_TO or timing_width(width) != width:
        return None
    return width


def open_backend(
    name: str, export_dir: Path, meta: ExportMetadata, slots: int, first_width: int, threads: int | None,
    precision: str = "auto", verifier: Any = None, measure: bool = False,
) -> Opened:
    """The fastest of `backend_choices` that loads and, at a lower precision, passes the check;
    remembered per machine, libraries, export and width (`measure`: choose again, whatever was
    remembered). A resizable backend on a dynamic-batch export starts at `first_width` (at most
    the slots), others at the slots."""
    if precision not in PRECISIONS:
        raise TrmEdgeError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")

    def width_for(backend: str) -> int:
        return initial_width(backend, meta, slots, first_width)

    def opening(choice: Choice) -> Backend:
        return create_backend(choice.backend, export_dir, meta, width_for(choice.backend), threads, choice.precision,
                              choice.static_width, choice.streams, choice.float_precision)

    if _one_candidate(name, export_dir, meta, precision):
        only = backend_choices(name, export_dir, meta, precision)[0]
        backend = opening(only)
        return Opened(backend, only, list(getattr(backend, "notes", ())))  # e.g. programs on another runtime
    # Before the candidates are even listed (that imports OpenVINO to ask for native precisions):
    # a remembered choice opens at once.
    start_width = min(slots, first_width)
    key = choice_key(export_dir, meta, name, precision, timing_width(start_width, meta), threads)
    cached = None if measure else read_cached_choice(export_dir, key, _possible(name, precision, meta))
    if cached is not None:
        remembered = Choice(cached.backend, cached.precision, cached.why, cached.static_width, cached.streams,
                            cached.float_precision)
        try:
            backend = opening(remembered)
        except TrmEdgeError:
            pass  # the machine changed under the cache in a way the key does not see: choose again
        else:
            return Opened(backend, remembered, cached.notes, cached.step_ms, cached.spread_ms, cached.checks,
                          remembered=True, timed_width=cached.width)
    choices = backend_choices(name, export_dir, meta, precision, static_width_for(start_width, meta),
                              streams_for(timing_width(start_width), threads) if meta.dynamic_batch else None)
    status = MEASURING_STATUS.get()
    at_width = f"{key['width']} slot" + ("s" if key["width"] > 1 else "")
    with status(f"choosing a backend: opening, checking and timing {len(choices)} candidates at {at_width} "
                "(remembered for next time)") if status else nullcontext():
        opened = _choose(choices, export_dir, meta, width_for, opening, threads, verifier, precision)
    chosen = opened.choice
    write_cached_choice(export_dir, key, CachedChoice(
        chosen.backend, chosen.precision, chosen.why, step_ms=opened.step_ms, checks=opened.checks, notes=opened.notes,
        width=key["width"], static_width=chosen.static_width, streams=chosen.streams, spread_ms=opened.spread_ms,
        float_precision=chosen.float_precision))
    return opened


def _possible(name: str, precision: str, meta: ExportMetadata) -> set[tuple[str, str]]:
    """The (backend, precision) pairs a remembered choice for this request may hold: what the
    registry says each backend runs (every CPU backend for auto)."""
    names = [e.name for e in BACKENDS.values() if e.runs_on == "cpu"] if name == "auto" else [name]
    return {(b, p) for b in names for p in entry(b).precisions(meta.precision, meta.int8_step is not None)
            if precision in ("auto", p)}


def _choose(choices: list[Choice], export_dir: Path, meta: ExportMetadata, width_for: Any, opening: Any,
            threads: int | None, verifier: Any, precision: str) -> Opened:
    """Open every candidate, check the lowered ones, time the survivors, keep the fastest."""
    validation = read_validation_puzzles(export_dir, meta)
    notes: list[str] = []
    first_error: TrmEdgeError | None = None
    live: dict[Choice, Backend] = {}
    checks: list[str] = []
    checked: dict[tuple[str, str, str | None], TrmEdgeError | None] = {}  # a twin (static, streams) shares its
    passed_over: set[tuple[str, str, str | None]] = set()  # step's check, and its note: said once
    twins: dict[tuple[str, str], Backend] = {}  # the references the checks opened, by (backend, precision)
    answers: dict[Any, Any] = {}  # each checked backend's looped answers, computed once
    for choice in choices:
        same_step = choice.step
        if (choice.static_width or choice.streams) and same_step in passed_over:
            continue
        lowered = choice.precision != meta.precision
        if lowered and precision == "auto" and (validation is None or not validation[2]):
            # Random tokens catch a broken graph, not rounding: auto lowers only what real puzzles checked.
            notes.append(f"{choice.label} passed over: this export kept no real validation puzzles to check "
                         f"{choice.precision} on (it was validated on random tokens); {_real_puzzles_fix(meta)}")
            passed_over.add(same_step)
            continue
        try:
            backend = opening(choice)
            notes += [f"{choice.label}: {note}" for note in getattr(backend, "notes", ())]  # e.g. a program's
            # An int8 step asked for by name runs as asked (export validated it against its simulation).
            as_validated = choice.precision == "int8" and precision == "int8" and not choice.float_precision
            if lowered and not as_validated and same_step not in checked:
                # Every lowered step is held to the export's own precision by the same bar; int8+bf16 also to
                # the int8 step as validated (its lowering is what is new). Held to the int8 step alone, each
                # link could lose up to the bar, the two together about twice it.
                for reference in (meta.precision, *(["int8"] if choice.float_precision else [])):
                    twin = next((b for c, b in live.items() if c.backend == choice.backend and c.precision == reference
                                 and not (c.float_precision or c.static_width or c.streams)), None)
                    if twin is None and (choice.backend, reference) not in twins:  # opened once for every check
                        twins[choice.backend, reference] = create_backend(
                            choice.backend, export_dir, meta, initial_width(choice.backend, meta, 1, 1), threads,
                            reference)
                    twin = twin or twins[choice.backend, reference]
                    check = check_precision(backend, twin, export_dir, meta, verifier, answers)
                    if not check.passed:
                        checked[same_step] = failed = TrmEdgeError(f"{choice.computes_in} failed its check: "
                                                                   f"{check.summary()}")
                        raise failed
                    checks.append(f"{choice.label}: precision check passed: {check.summary()}")
                checked[same_step] = None
        except TrmEdgeError as exc:
            first_error = first_error or exc
            fix = (f"; export with --data on puzzles like yours to check {choice.precision} on them"
                   if "failed its check" in str(exc) else "")
            notes.append(f"{choice.label} passed over: {exc}{fix}")
            if not (choice.static_width or choice.streams):
                passed_over.add(same_step)
            continue
        live[choice] = backend
    if not live:
        raise first_error or TrmEdgeError(notes[0] if notes else "no backend could be opened")
    step_ms: dict[str, float] = {}
    spread_ms: dict[str, float] = {}
    width = 0
    if len(live) > 1:
        tokens, ids, _ = validation or random_puzzles(meta)
        width = timing_width(width_for(choices[0].backend), meta)  # a fixed-batch export: its batch
        timings = time_steps({c.label: b for c, b in live.items()}, tokens, ids, width)
        step_ms = {label: t.median_ms for label, t in timings.items()}
        spread_ms = {label: t.spread_ms for label, t in timings.items()}
        best = min(live, key=lambda c: step_ms[c.label])
        others = ", ".join(f"{c.label} {step_ms[c.label]:.3g} ms" for c in live if c != best)
        why = f"the fastest step measured here at {width} slots: {step_ms[best.label]:.3g} ms ({others})"
    else:
        best = next(iter(live))
        why = best.why
    return Opened(live.pop(best), replace(best, why=why), notes, step_ms, spread_ms, checks,
                  timed_width=width)


def _real_puzzles_fix(meta: ExportMetadata) -> str:
    """How to give an export validated on random tokens real puzzles."""
    from trm_edge.tasks import get_codec

    try:
        makes_puzzles = get_codec(meta.task, meta.task_options).sample_puzzles(1) is not None
    except TrmEdgeError:
        makes_puzzles = False
    if makes_puzzles:
        return "export it again (a plain export now validates on puzzles its task makes) or with --data HELD_OUT.npz"
    what = "ARC task files (TASKS.json) or an .npz" if meta.task == "arc" else "an .npz of real puzzles"
    return f"export it again with --data: {what}"
