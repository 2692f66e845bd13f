"""The export's step as a phone runtime's program (ExecuTorch .pte, LiteRT .tflite), behind the calls
export validation and the runtime both make: `init(feeds) -> x_emb` and `step(feeds) -> outputs`.

An export directory may hold, beside init.onnx and step.onnx, the same two graphs as programs of
another runtime (`trm_edge.json`'s "programs": {format: record}). Each program takes a batch of at
most `width` rows; a LiteRT program takes exactly `width` (converted at a fixed width, see
export/litert_program.py), so shorter calls are padded. A batch wider than `width` runs in tiles.

The runtimes' Python packages are imported only when a program is opened. ExecuTorch's Python
runtime exchanges torch tensors (torch comes with the executorch extra; on a phone its C++ runtime
needs none); LiteRT's interpreter takes numpy arrays.

A program the runtime cannot load (damaged, or written for another version of it) is one line that
names the file, the versions and the fix, never the runtime's own exception: auto passes over that
backend and runs another (backends/choice.py). The runtime's version the programs were made and
validated with is recorded at export; a program that loads on another version says so in a note.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from trm_edge.errors import TrmEdgeError
from trm_edge.hardware import usable_cores

STEP_INPUT_ORDER = ("x_emb", "z_H", "z_L", "reset")
PROGRAM_FORMATS = ("executorch", "litert")
INSTALL = {"executorch": "pip install 'trm-edge[executorch]'", "litert": "pip install 'trm-edge[litert]'"}
# The converters, where they are another install than the runtime.
CONVERTER_INSTALL = {**INSTALL, "litert": "pip install 'trm-edge[litert-export]' (litert-torch)"}
# The package whose runtime loads each format's programs: its version is recorded at export, checked at load.
RUNTIME_PACKAGES = {"executorch": "executorch", "litert": "ai-edge-litert"}
# A program is a flatbuffer whose identifier sits at bytes 4-8: ExecuTorch's "ET" and a schema number
# (ET12), TFLite's "TFL3". Read before the runtime sees the file: ExecuTorch's Python runtime aborts
# the whole process where a damaged file makes it log bytes that are not UTF-8 (a bad identifier; a
# damaged body too, which the sha256 records in trm_edge.json refuse before any runtime reads it).
IDENTIFIERS = {"executorch": re.compile(rb"ET[0-9]{2}"), "litert": re.compile(rb"TFL[0-9]")}
NATIVE_LOG_LINE = re.compile(r"\[[\w.]+:\d+\] (.+)")  # ExecuTorch's C++ log: "[program.cpp:114] ..."


def missing_program(export_dir: Path, programs: dict[str, Any], format: str) -> str | None:
    """Why the export has no `format` program to run, None where it has one."""
    if format not in programs:
        return (f"{export_dir} holds no {format} program: export it with trm-edge export CKPT --format {format} "
                f"(init and step programs beside the ONNX graphs)")
    return None


def installed_version(package: str) -> str | None:
    """An installed distribution's version (from its metadata: nothing imported), None where absent."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


class ProgramRunner:
    """A format's init and step programs; subclasses say how one is opened (`_open`) and how one
    call runs (`_run`)."""

    format = ""
    engine = ""
    exact_width = False  # whether every call must have exactly `width` rows (fixed-shape programs)

    def __init__(self, export_dir: Path, record: dict[str, Any], uses_ids: bool) -> None:
        self.width = int(record["width"])
        self.uses_ids = uses_ids
        package = RUNTIME_PACKAGES[self.format]
        self.runtime = f"{package} {installed_version(package)}"
        made = (record.get("software") or {}).get(package)
        self.made_with = f"{package} {made}" if made else None  # None: an export that did not record it
        self.notes: list[str] = []  # what the user should know (a runtime other than the one validated)
        self._init = self._load(export_dir / record["init"])
        self._step = self._load(export_dir / record["step"])
        if self.made_with not in (None, self.runtime):
            self.notes.append(f"programs made and validated with {self.made_with} run on {self.runtime} here: "
                              f"export again with --format {self.format} to validate them on it")

    def _load(self, path: Path) -> Any:
        """The program in `path`, or one line saying why this runtime cannot load it and what to do."""
        try:
            with open(path, "rb") as handle:
                head = handle.read(8)
        except OSError as exc:
            raise TrmEdgeError(f"cannot read {path}: {exc.strerror or exc}; export again with --format "
                               f"{self.format}") from None
        if not IDENTIFIERS[self.format].fullmatch(head[4:8]):
            raise self._cannot_load(path, f"no {self.format} program identifier "
                                          f"({IDENTIFIERS[self.format].pattern.decode()}) at byte 4")
        held: list[str] = []
        try:
            with quiet_native_logs(held):
                return self._open(path)
        except TrmEdgeError:
            raise
        except Exception as exc:  # the runtime's own RuntimeError or ValueError: one line instead
            # The runtime's own log line says more than its exception ("[program.cpp:114] File size is too small").
            native = [m.group(1) for m in map(NATIVE_LOG_LINE.match, held) if m]
            said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise self._cannot_load(path, "; ".join([said, *native[-1:]])[:300]) from None

    def _cannot_load(self, path: Path, why: str) -> TrmEdgeError:
        made = f"; the export made it with {self.made_with}" if self.made_with not in (None, self.runtime) else ""
        return TrmEdgeError(f"{path} cannot be loaded by {self.runtime} ({why}): the file is damaged or was made "
                            f"for another version{made}; export again with --format {self.format}")

    def _open(self, path: Path) -> Any:
        raise NotImplementedError

    def _run(self, program: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def init(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        names = ("tokens", "puzzle_identifiers") if self.uses_ids else ("tokens",)
        return self._tiled(self._init, [feeds[n] for n in names])[0]

    def step(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        # The programs take `reset` as uint8 (export/program_export.py: phones' bindings lack bool tensors).
        inputs = [feeds[n] for n in STEP_INPUT_ORDER]
        inputs[-1] = inputs[-1].astype(np.uint8)
        return self._tiled(self._step, inputs)

    def _tiled(self, program: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
        rows = len(inputs[0])
        parts = []
        for start in range(0, rows, self.width):
            tile = [np.ascontiguousarray(a[start : start + self.width]) for a in inputs]
            short = self.width - len(tile[0])
            if self.exact_width and short:  # pad with copies of the first row, dropped below
                tile = [np.concatenate([a, np.repeat(a[:1], short, axis=0)]) for a in tile]
            outputs = self._run(program, tile)
            parts.append([o[: self.width - short] if self.exact_width else o for o in outputs])
        return [np.concatenate(column) if len(column) > 1 else column[0] for column in zip(*parts, strict=True)]


class ExecuTorchRunner(ProgramRunner):
    format = "executorch"
    engine = "ExecuTorch (XNNPACK)"

    def _open(self, path: Path) -> Any:
        # Under quiet_native_logs (`_load`): XNNPACK's thread pool logs what it reads of the CPU as it starts.
        return import_executorch_runtime().Runtime.get().load_program(str(path)).load_method("forward")

    def _run(self, program: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        outputs = program.execute([torch.from_numpy(a) for a in inputs])
        # Copies: the outputs live in the program's planned memory, which the next call overwrites.
        return [o.numpy().copy() for o in outputs]


class LiteRtRunner(ProgramRunner):
    format = "litert"
    engine = "LiteRT (XNNPACK)"
    exact_width = True

    def __init__(self, export_dir: Path, record: dict[str, Any], uses_ids: bool, threads: int | None = None) -> None:
        self.threads = threads
        self._started: set[int] = set()  # the programs that have run once
        super().__init__(export_dir, record, uses_ids)

    def _open(self, path: Path) -> Any:
        interpreter_module = import_litert_interpreter()
        # Every usable core unless told: the interpreter takes no "all" (-1) value.
        threads = self.threads or len(usable_cores())
        # Under quiet_native_logs (`_load`): the XNNPACK delegate's "Created TensorFlow Lite ..." line.
        interpreter = interpreter_module.Interpreter(model_path=str(path), num_threads=threads)
        runner = interpreter.get_signature_runner()
        inputs = sorted(runner.get_input_details(), key=_argument_position)
        outputs = sorted(runner.get_output_details(), key=_argument_position)
        return runner, inputs, outputs

    def _run(self, program: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
        runner, input_names, output_names = program
        feeds = dict(zip(input_names, inputs, strict=True))
        if id(runner) in self._started:
            results = runner(**feeds)
        else:  # the XNNPACK delegate applies at the first call and says so on stderr
            with quiet_native_logs():
                results = runner(**feeds)
            self._started.add(id(runner))
        return [np.array(results[name]) for name in output_names]


def _argument_position(name: str) -> int:
    """args_3 -> 3, output_2 -> 2: the converter names a signature's tensors by position."""
    digits = name.rsplit("_", 1)[-1]
    return int(digits) if digits.isdigit() else 0


def open_runner(format: str, export_dir: Path, record: dict[str, Any], uses_ids: bool,
                threads: int | None = None) -> ProgramRunner:
    if format == "executorch":
        return ExecuTorchRunner(export_dir, record, uses_ids)
    if format == "litert":
        return LiteRtRunner(export_dir, record, uses_ids, threads)
    raise TrmEdgeError(f"program format {format!r} is not one of {', '.join(PROGRAM_FORMATS)}")


@contextlib.contextmanager
def quiet_native_logs(held_lines: list[str] | None = None) -> Iterator[None]:
    """Keep the phone runtimes' and converters' chatter off the user's terminal: torchao's notes on
    CUDA kernels it cannot load (a CPU install has none), torch's pytree deprecation note, the C++
    runtimes' CPU-probe and flatbuffer lines (absl, XNNPACK), which bypass Python (or reach it:
    ExecuTorch's log goes through sys.stderr). What was held
    back is shown if the block fails, or put in `held_lines` where given (the caller says it in its
    one-line error)."""
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as held, io.StringIO() as python_held:
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            with contextlib.redirect_stderr(python_held):  # ExecuTorch's C++ log writes to Python's sys.stderr
                yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            text = held.read().decode(errors="replace") + python_held.getvalue()
            if held_lines is None:
                sys.stderr.write(text)
            else:
                held_lines += text.splitlines()
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def import_executorch_runtime() -> Any:
    try:
        with quiet_native_logs():
            import executorch.runtime as runtime
    except ImportError:
        raise TrmEdgeError(f"ExecuTorch is not installed: {INSTALL['executorch']}") from None
    return runtime


def import_litert_interpreter() -> Any:
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        raise TrmEdgeError(f"LiteRT is not installed: {INSTALL['litert']}") from None
    return interpreter
