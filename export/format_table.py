"""The export formats as one table: what each writes, what it needs installed, its writer, how it is
validated, what runs it, and the options it takes. `trm-edge export --format`, its help, `doctor`,
`bench --backend all` and README's format list all read it.

A format is one writer plus one entry. The writer is `write(checkpoint, output, onnx, settings,
console) -> Path` (`onnx`: export/formats.py's OnnxOptions, shared by every format since each starts
from the validated ONNX export; `settings`: this entry's options by name, defaults filled). Add an
entry here, or call `register_format` from your own code (tests/test_export_formats.py adds a toy).

This module is data only (no torch, no onnx): the CLI reads it to build its help.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trm_edge.errors import TrmEdgeError
from trm_edge.export.files import (
    ENGINE_FILES,
    EXPORT_DIRECTORY,
    PROGRAM_FILES,
    SOLVE_FILE,
    TRITON_REPOSITORY,
    WEB_SITE,
)


@dataclass(frozen=True)
class FormatOption:
    """One command-line option of a format: `--flag VALUE` (or `--flag/--off` for a switch)."""

    flag: str
    name: str  # its key in the writer's settings
    kind: type  # int, float, str, Path or bool
    default: Any
    help: str
    off: str | None = None  # a switch's negative flag ("--no-calibrate")

    def parse(self, text: str) -> Any:
        try:
            return self.kind(text)
        except ValueError:
            raise TrmEdgeError(f"{self.flag} takes {self.kind.__name__}, not {text!r}") from None


@dataclass(frozen=True)
class ExportFormat:
    name: str
    summary: str  # one line for --help and README
    writes: tuple[str, ...]  # what its output holds (export/files.py: the names its writer writes)
    writer: Callable[..., Path] | str  # the function, or "module:function" (imported when used)
    validation: str  # how what it writes is checked
    runs_on: str  # what runs it, in words
    extra: str | None = None  # the pip extra it needs beyond torch (None: the torch extra alone)
    options: tuple[FormatOption, ...] = ()
    output: str | None = None  # what -o must name where the format needs it ("REPO, a new folder ...")
    solve_graph: bool = False  # solve.onnx goes into the export (`export` checks it with the runtime)
    backends: tuple[str, ...] = ()  # the runtime backends (runtime/backends/registry.py) that run what it adds
    needs: tuple[str, ...] = ("torch", "onnx")  # modules the writer imports (doctor looks them up)
    install: str | None = None  # how to get them, where the extra alone does not
    # The batch its files take exactly where the export's --batch does not set one (None: any batch).
    fixed_batch: int | None = None

    def missing(self) -> list[str]:
        """The modules this format's writer needs that are not installed here."""
        return [m for m in self.needs if importlib.util.find_spec(m) is None]

    def write(self) -> Callable[..., Path]:
        if callable(self.writer):
            return self.writer
        module, function = self.writer.split(":")
        return getattr(importlib.import_module(module), function)

    def settings(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """This format's options by name: the defaults, overridden by `given` (names it takes only)."""
        given = dict(given or {})
        known = {o.name for o in self.options}
        unknown = sorted(set(given) - known)
        if unknown:
            raise TrmEdgeError(f"--format {self.name} takes no option {', '.join(unknown)} (it takes "
                               f"{', '.join(sorted(known)) or 'none'})")
        return {o.name: given.get(o.name, o.default) for o in self.options}


# Options every format takes: each starts from the validated ONNX export.
ONNX_OPTIONS = (
    FormatOption("--opset", "opset", int, 17, "ONNX opset, 17-20 (17 parses on TensorRT 10.x / Jetson)."),
    FormatOption("--dynamic", "dynamic", bool, True, "Dynamic batch axis (default) or fixed (--static, with "
                 "--batch).", off="--static"),
    FormatOption("--atol", "atol", float, None, "Absolute tolerance for the step outputs."),
    FormatOption("--validate-steps", "validate_steps", int, 4, "Looped steps whose answers are compared."),
    FormatOption("--calibrate", "calibrate", bool, True, "With --data: choose the default halting policy on it.",
                 off="--no-calibrate"),
)

_LARGEST = "Largest batch"
# LiteRT's converter takes no dynamic batch: its programs take exactly this many rows unless --batch says.
LITERT_BATCH = 16
FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("onnx", "an export directory: init.onnx, step.onnx, trm_edge.json", EXPORT_DIRECTORY,
                 "trm_edge.export.formats:write_onnx", "against PyTorch: step outputs by the "
                 "precision's bars, answers after looped steps", "ort-cpu, ort-cuda, ort-trt, openvino",
                 backends=("ort-cpu", "ort-cuda", "ort-trt", "openvino")),
    ExportFormat("engine", "the export plus a TensorRT engine built for this machine's GPU",
                 (*EXPORT_DIRECTORY, *ENGINE_FILES),
                 "trm_edge.export.formats:write_engine", "the ONNX export's; the engine is built from it",
                 "tensorrt", extra="gpu", backends=("tensorrt",), needs=("torch", "onnx", "tensorrt"),
                 install="the tensorrt package from NVIDIA's index on a GPU machine, docs/install.md", options=(
                     FormatOption("--workspace", "workspace", float, 4.0, "TensorRT workspace in GiB."),
                     FormatOption("--min-batch", "min_batch", int, 1, "TensorRT profile: smallest batch."),
                     FormatOption("--opt-batch", "opt_batch", int, 64, "TensorRT profile: batch to tune for."),
                     FormatOption("--max-batch", "max_batch", int, 256, "TensorRT profile: largest batch."))),
    ExportFormat("triton", "a Triton model repository: the graphs and a solver model that loops them",
                 TRITON_REPOSITORY, "trm_edge.export.formats:write_triton",
                 "the ONNX export's (made in scratch space)", "trm-edge serve (Triton)", output="REPO, a new "
                 "folder for the model repository", options=(
                     FormatOption("--triton-step", "triton_step", str, "onnxruntime", "The step model: "
                                  "onnxruntime | tensorrt."),
                     FormatOption("--triton-device", "triton_device", str, "gpu", "Where Triton runs the graphs: "
                                  "gpu | cpu."),
                     FormatOption("--triton-instances", "triton_instances", int, 1, "Instances of the solver model."),
                     FormatOption("--queue-delay-us", "queue_delay_us", int, 1000, "Dynamic batching delay (us)."),
                     FormatOption("--max-batch", "max_batch", int, 256, f"{_LARGEST} Triton forms."))),
    ExportFormat("web", "a static page that solves Sudokus in the browser (ONNX Runtime Web)", WEB_SITE,
                 "trm_edge.export.formats:write_web", "solve.onnx against the runtime's "
                 "answers", "a browser (onnxruntime-web)", extra="cpu", output="SITE, a new folder for the page",
                 needs=("torch", "onnx", "onnxruntime"),
                 solve_graph=True, options=(
                     FormatOption("--ort-web", "ort_web", Path, None, "onnxruntime-web's dist folder, copied into "
                                  "the site (node_modules/onnxruntime-web/dist)."),)),
    ExportFormat("solve", "the export plus solve.onnx: the whole solve (loop and halting) as one graph",
                 (*EXPORT_DIRECTORY, SOLVE_FILE), "trm_edge.export.formats:write_onnx",
                 "solve.onnx against the runtime's answers, steps and verdicts",
                 "any ONNX runtime (examples/solve_onnx.py)", extra="cpu", solve_graph=True,
                 needs=("torch", "onnx", "onnxruntime")),
    ExportFormat("executorch", "the export plus init.pte and step.pte for ExecuTorch (XNNPACK; phones)",
                 (*EXPORT_DIRECTORY, *PROGRAM_FILES["executorch"]), "trm_edge.export.formats:write_programs",
                 "against PyTorch by the fp32 bars, on the ONNX export's validation puzzles",
                 "--backend executorch (ExecuTorch's runtime)", extra="executorch",
                 backends=("executorch",), needs=("torch", "executorch"), options=(
                     FormatOption("--max-batch", "max_batch", int, 64, f"{_LARGEST} one call of the programs "
                                  "takes (their memory is planned for it)."),)),
    ExportFormat("litert", "the export plus init.tflite and step.tflite for LiteRT (XNNPACK; Android)",
                 (*EXPORT_DIRECTORY, *PROGRAM_FILES["litert"]), "trm_edge.export.formats:write_litert",
                 "against PyTorch by the fp32 bars, on the ONNX export's validation puzzles",
                 "--backend litert (LiteRT's interpreter)", extra="litert-export",
                 backends=("litert",), needs=("torch", "litert_torch", "ai_edge_litert"),
                 fixed_batch=LITERT_BATCH),
)}


def doctor_rows() -> list[tuple[str, str]]:
    """One row per format: writable here, or what to install."""
    rows = []
    for entry in FORMATS.values():
        missing = entry.missing()
        install = entry.install or f"pip install 'trm-edge[{entry.extra or 'torch'}]'"
        status = "can be written here" if not missing else f"needs {', '.join(missing)} ({install})"
        rows.append((f"format {entry.name}", f"{status}; {entry.summary}"))
    return rows


def format_run_by(backend: str) -> str | None:
    """The format whose files `backend` runs (the first that names it), None where none does."""
    return next((f.name for f in FORMATS.values() if backend.split(":")[0] in f.backends), None)


def register_format(entry: ExportFormat) -> None:
    """Add a format (or replace one of the same name)."""
    FORMATS[entry.name] = entry


def get_format(name: str) -> ExportFormat:
    if name not in FORMATS:
        raise TrmEdgeError(f"export format {name!r} is not one of {', '.join(FORMATS)}")
    return FORMATS[name]


@dataclass
class ParsedOptions:
    onnx: dict[str, Any] = field(default_factory=dict)  # ONNX_OPTIONS by name, defaults filled
    settings: dict[str, Any] = field(default_factory=dict)  # the format's, defaults filled
    given: set[str] = field(default_factory=set)  # the names the command line set

    def given_settings(self) -> dict[str, Any]:
        """The format's options the command line set (`export` fills the rest, and tells them apart)."""
        return {name: value for name, value in self.settings.items() if name in self.given}


def parse_options(entry: ExportFormat, args: Sequence[str]) -> ParsedOptions:
    """The command's remaining arguments against the ONNX options and `entry`'s: `--flag VALUE`,
    `--flag=VALUE`, a switch and its negative. An option of another format says which takes it."""
    table = {o.flag: o for o in (*ONNX_OPTIONS, *entry.options)}
    switches_off = {o.off: o for o in (*ONNX_OPTIONS, *entry.options) if o.off}
    values: dict[str, Any] = {}
    rest = list(args)
    while rest:
        token = rest.pop(0)
        flag, _, inline = token.partition("=")
        if flag in switches_off:
            values[switches_off[flag].name] = False
            continue
        option = table.get(flag)
        if option is None:
            raise TrmEdgeError(_unknown(flag, entry))
        if option.kind is bool:
            values[option.name] = True
            continue
        if not inline and not rest:
            raise TrmEdgeError(f"{flag} needs a value")
        values[option.name] = option.parse(inline or rest.pop(0))
    parsed = ParsedOptions(given=set(values))
    parsed.onnx = {o.name: values.get(o.name, o.default) for o in ONNX_OPTIONS}
    parsed.settings = entry.settings({k: v for k, v in values.items() if k not in parsed.onnx})
    return parsed


def _unknown(flag: str, entry: ExportFormat) -> str:
    if not flag.startswith("-"):
        return f"unexpected argument {flag!r}: export takes one checkpoint (trm-edge export --help)"
    takers = [f.name for f in FORMATS.values() if any(flag in (o.flag, o.off) for o in f.options)]
    if takers:
        return f"{flag} goes with --format {' or '.join(takers)}, not --format {entry.name}"
    return f"no such option {flag}: trm-edge export --help lists the options of every format"


def options_help() -> str:
    """Each format's line and options, for `trm-edge export --help` (one paragraph each)."""
    def listed(options: Sequence[FormatOption]) -> str:
        return "; ".join(f"{o.flag}{'/' + o.off if o.off else ''} [{o.default}] {o.help.rstrip('.')}"
                         for o in options)

    paragraphs = [f"Every format: {listed(ONNX_OPTIONS)}."]
    for entry in FORMATS.values():
        extra = f"; pip install 'trm-edge[{entry.extra}]'" if entry.extra else ""
        own = f" Options: {listed(entry.options)}." if entry.options else ""
        if entry.fixed_batch:
            own += f" Its files take exactly --batch rows ({entry.fixed_batch} without it; a shorter call is padded)."
        paragraphs.append(f"--format {entry.name}: {entry.summary} (runs on {entry.runs_on}{extra}).{own}")
    return "\n\n".join(paragraphs)
