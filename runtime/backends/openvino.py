"""OpenVINO backend: the export's ONNX graphs as they are, compiled by OpenVINO for a CPU (or an
Intel GPU / NPU where OpenVINO finds one), at the inference precision the hardware runs natively.

The graphs stay float32 at their edges: OpenVINO's inference precision (bf16 on CPUs with AVX-512
BF16 or AMX) applies inside the compiled model, so the state between steps is an ordinary float32
numpy array that the requests read and write in place (no copies, as the ORT CPU backend does).
OpenVINO quietly runs float32 when a CPU cannot do bf16; here the precision it actually compiled
for is read back, and a precision the hardware does not run is an error, never a silent fallback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from trm_edge.contract.metadata import NUMPY_STATE_DTYPES, ExportMetadata
from trm_edge.errors import TrmEdgeError
from trm_edge.hardware import native_half_precision_switched_off
from trm_edge.precisions import LOWERED, TABLE
from trm_edge.runtime.backends.base import int8_step_file
from trm_edge.runtime.backends.graph_io import check_tensors
from trm_edge.runtime.backends.openvino_rewrites import route_left_weights

STATE_INPUTS = ("x_emb", "z_H", "z_L")
OPENVINO_CACHE = "openvino_cache"  # compiled models, in the export directory
# OpenVINO 2026.4 hangs compiling an f16 model with a CACHE_DIR on a CPU with AVX-512 FP16
# (seen on a Xeon: no return after minutes; 0.35 s without the cache): fp16 compiles uncached.
CACHED_PRECISIONS = ("fp32", "bf16", "int8")


def frontend_failures(ov: Any) -> tuple[type[BaseException], ...]:
    """What OpenVINO's ONNX frontend raises for a graph it cannot read (none derive from RuntimeError)."""
    f = ov.frontend
    return (f.GeneralFailure, f.InitializationFailure, f.NotImplementedFailure, f.OpConversionFailure,
            f.OpValidationFailure)


def import_openvino() -> Any:
    try:
        import openvino
    except ImportError:
        raise TrmEdgeError("openvino is not installed: pip install 'trm-edge[openvino]'") from None
    return openvino


def native_precisions(device: str = "CPU") -> list[str]:
    """The precisions OpenVINO runs natively on `device` (fp32 always; bf16/fp16 where the
    hardware has them), from its OPTIMIZATION_CAPABILITIES; fp32 alone on a CPU where
    TRM_EDGE_NO_NATIVE_BF16 is set (trm_edge.hardware)."""
    ov = import_openvino()
    try:
        capabilities = set(ov.Core().get_property(device, "OPTIMIZATION_CAPABILITIES"))
    except RuntimeError:
        return []
    if device == "CPU" and native_half_precision_switched_off():
        return ["fp32"]
    return ["fp32"] + [p for p, cap in (("bf16", "BF16"), ("fp16", "FP16")) if cap in capabilities]


def compiled_model_cache(export_dir: Path) -> Path | None:
    """OpenVINO's compiled-model cache inside the export (keyed by OpenVINO itself on the graph,
    device and settings), or None where the export is read-only."""
    folder = Path(export_dir) / OPENVINO_CACHE
    try:
        folder.mkdir(exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


def _shape(port: Any) -> list[int | str]:
    """A port's shape as check_tensors reads it: fixed dimensions as ints, dynamic ones as '?'."""
    return [d.get_length() if d.is_static else "?" for d in port.get_partial_shape()]


class OpenVinoBackend:
    def __init__(
        self, export_dir: Path, meta: ExportMetadata, width: int, threads: int | None, precision: str,
        device: str = "CPU", options: dict[str, Any] | None = None, static_width: int | None = None,
        streams: int | None = None, float_precision: str | None = None, route_weights: bool | None = None,
    ) -> None:
        ov = import_openvino()
        self.ov = ov
        self.name = "openvino" if device == "CPU" else f"openvino:{device}"
        self.meta = meta
        self.device = device
        if meta.state_dtype not in NUMPY_STATE_DTYPES or meta.precision != "fp32":
            raise TrmEdgeError(
                f"the openvino backend runs fp32 exports (OpenVINO lowers the precision inside the compiled model); "
                f"this export is {meta.precision}: export fp32 for it"
            )
        if precision not in TABLE:
            raise TrmEdgeError(f"precision {precision!r} is not one of {', '.join(TABLE)}")
        step_file = int8_step_file(meta) if precision == "int8" else meta.graphs["step"].file
        core = ov.Core()
        if device not in core.available_devices:
            raise TrmEdgeError(f"OpenVINO finds no {device} here (it has {', '.join(core.available_devices)})")
        if precision not in ("fp32", "int8") and precision not in native_precisions(device):
            raise TrmEdgeError(
                f"this {device} does not run {precision} natively (it runs {', '.join(native_precisions(device))}"
                f"{'; TRM_EDGE_NO_NATIVE_BF16 is set' if native_half_precision_switched_off() else ''}): ask "
                "precision auto or fp32 (--backend openvino or openvino:fp32)"
            )
        # The int8 step (QDQ) keeps its float parts (its float products, norms, elementwise work) fp32, or at a
        # lowered `float_precision` the device runs natively (bf16: 1.35x on a Zen 4 at 16 slots).
        hint_precision = float_precision if precision == "int8" and float_precision else precision
        if hint_precision not in ("fp32", "int8") and hint_precision not in native_precisions(device):
            raise TrmEdgeError(f"this {device} does not run {hint_precision} natively: ask precision auto or fp32 "
                               "(--backend openvino or openvino:fp32)")
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": TABLE[hint_precision].openvino_hint,
                                  "PERFORMANCE_HINT": "LATENCY"}
        if threads and device == "CPU":
            config["INFERENCE_NUM_THREADS"] = threads
        config.update(options or {})  # e.g. PERF_COUNT for openvino_profile.py
        cache = compiled_model_cache(export_dir) if precision in CACHED_PRECISIONS else None
        if cache is not None:  # a compiled model is read back from here on the next load (start-up)
            config["CACHE_DIR"] = str(cache)
        # Read through the ONNX frontend by name: left to guess, OpenVINO also tries its TensorFlow
        # frontend on a damaged file, which writes parser noise to stderr before the real error.
        onnx_frontend = ov.frontend.FrontEndManager().load_by_framework("onnx")
        graphs = {}
        unreadable: tuple[type[BaseException], ...] = (RuntimeError, *frontend_failures(ov))
        for role in ("init", "step"):
            path = export_dir / (step_file if role == "step" else meta.graphs[role].file)
            try:
                graphs[role] = onnx_frontend.convert(onnx_frontend.load(str(path)))
            except unreadable:
                raise TrmEdgeError(f"OpenVINO cannot load {path} as an ONNX graph; the export is damaged or "
                                   "incomplete: export again") from None
        for role, graph in graphs.items():
            check_tensors(meta, role, {name: _shape(port) for port in [*graph.inputs, *graph.outputs]
                                       for name in port.get_names()},
                          {name for port in graph.inputs for name in port.get_names()})
        # Inputs the backend's own rewrites add, bound once (openvino_rewrites.py): a lowered step
        # only, where they make its weight-on-the-left products run in the lowered precision.
        # route_weights=True forces them at fp32 too: tests hold the rewrite to the same answers on
        # CPUs without bf16 (tests/test_openvino_rewrites.py).
        routed = hint_precision in LOWERED if route_weights is None else route_weights
        self._constants = route_left_weights(graphs["step"], ov) if routed else {}
        # A step compiled for one width runs that width (static shapes: measured 1.3x at batch 1 on
        # a Zen 4); every other width runs the dynamic step, so the solver's width still follows the work.
        static = _at_width(graphs["step"].clone(), static_width) if static_width and meta.dynamic_batch else None
        # Streams: two slots or more are split over `streams` requests that run at once, each on its
        # share of the cores, instead of every op spread over all of them (a small model's ops are
        # too short to split well: 1.6x at 16 and 64 slots on a 2-core Zen 4 in bf16, 1.1-1.2x in
        # fp32); one slot runs the LATENCY model, which keeps every core.
        streamed = {**{k: v for k, v in config.items() if k != "PERFORMANCE_HINT"}, "NUM_STREAMS": streams}
        # The plain step is compiled only when a width needs it (a start-up saved where streams or a
        # static width run every width the solver sees).
        self._compile = lambda model, settings: self._compiled(core, model, device, settings)
        self._plain: tuple[Any, dict[str, Any]] = (graphs["step"], config)
        self._step_graph = graphs["step"]
        self.init_model = self._compile(graphs["init"], config)
        self.static_model = self._compile(static, config) if static is not None else None
        self.streams_model = (self._compile(graphs["step"], streamed) if streams and streams > 1 and device == "CPU"
                              else None)
        self.step_model: Any = None
        compiled = self.streams_model or self.static_model
        if compiled is None:
            self.step_model = compiled = self._compile(graphs["step"], config)
        ran = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        if ran != TABLE[hint_precision].openvino_hint:
            raise TrmEdgeError(
                f"this {device} does not run {precision} natively (OpenVINO compiled the step for {ran}; it runs "
                f"{', '.join(native_precisions(device)) or 'fp32'} here): ask precision auto or fp32 "
                "(--backend openvino or openvino:fp32)"
            )
        self.precision = precision
        self.float_precision = float_precision if precision == "int8" else None
        self._ports = {name: self._port(name) for name in [*STATE_INPUTS, "reset", "z_H_next", "z_L_next", "logits",
                                                           "answer", "q_halt", "q_continue", *self._constants]}
        self.uses_ids = meta.model.uses_puzzle_identifiers
        self.init_request = self.init_model.create_infer_request()
        self._dynamic_request = self.step_model.create_infer_request() if self.step_model is not None else None
        self.static_request = self.static_model.create_infer_request() if self.static_model is not None else None
        self.static_width = static_width if self.static_model is not None else None
        self.streams = streams if self.streams_model is not None else None
        self.stream_requests = ([self.streams_model.create_infer_request() for _ in range(self.streams)]
                                if self.streams_model is not None and self.streams else [])
        self.request = self._dynamic_request or (self.stream_requests or [self.static_request])[0]
        self.requests: list[tuple[Any, slice]] = []  # each request this width runs, with its rows
        self.dtype = NUMPY_STATE_DTYPES[meta.state_dtype]
        self.can_reslot = device == "CPU"  # state in host arrays: moving slots is a numpy copy
        self.resize(width)

    @staticmethod
    def _compiled(core: Any, model: Any, device: str, settings: dict[str, Any]) -> Any:
        try:
            return core.compile_model(model, device, settings)
        except RuntimeError as exc:
            first = (str(exc).strip().splitlines() or ["unknown error"])[0][:300]
            raise TrmEdgeError(f"OpenVINO cannot compile this export for {device}: {first}; export again") from None

    @property
    def dynamic_request(self) -> Any:
        """The plain step's request (compiled at first use)."""
        if self._dynamic_request is None:
            self.step_model = self._compile(*self._plain)
            self._dynamic_request = self.step_model.create_infer_request()
        return self._dynamic_request

    def _port(self, name: str) -> tuple[str, int]:
        """('input' | 'output', index) of a graph tensor in the step (every compiled form keeps the order)."""
        for kind, ports in (("input", self._step_graph.inputs), ("output", self._step_graph.outputs)):
            for i, port in enumerate(ports):
                if name in port.get_names():
                    return kind, i
        step_file = self.meta.graphs["step"].file
        raise TrmEdgeError(f"{step_file} has no tensor {name!r}: the export is damaged; export again")

    def _bind(self, name: str, array: np.ndarray) -> None:
        """Bind `array` (every slot's rows) to each request, its rows to the request that runs them."""
        kind, index = self._ports[name]
        for request, rows in self.requests:
            tensor = self.ov.Tensor(array if array.ndim == 0 else array[rows], shared_memory=True)
            if kind == "input":
                request.set_input_tensor(index, tensor)
            else:
                request.set_output_tensor(index, tensor)

    def resize(self, width: int) -> None:
        """Host buffers for `batch` slots (zeros); the compiled models are kept (dynamic batch)."""
        model = self.meta.model
        self.width = width
        if width == self.static_width:
            self.requests = [(self.static_request, slice(None))]
        elif self.stream_requests and width > 1:  # contiguous shares of the rows (the batch axis comes first)
            cuts = np.linspace(0, width, min(len(self.stream_requests), width) + 1).astype(int)
            self.requests = [(r, slice(a, b)) for r, a, b in zip(self.stream_requests, cuts[:-1], cuts[1:],
                                                                  strict=False)]
        else:
            self.requests = [(self.dynamic_request, slice(None))]
        self.request = self.requests[0][0]
        shape = (width, model.state_len, model.hidden_size)
        self.x_emb = np.zeros(shape, self.dtype)
        self.state = [np.zeros(shape, self.dtype), np.zeros(shape, self.dtype)]  # z_H, z_L now
        self.spare = [np.zeros(shape, self.dtype), np.zeros(shape, self.dtype)]  # written by the step
        self.logits = np.zeros((width, model.seq_len, model.vocab_size), np.float32)
        self.answer = np.zeros((width, model.seq_len), dtype=np.int32)
        self.q_halt = np.zeros(width, dtype=np.float32)
        self.q_continue = np.zeros(width, dtype=np.float32)
        self.reset = np.zeros(width, dtype=bool)
        for name, array in (("logits", self.logits), ("answer", self.answer), ("q_halt", self.q_halt),
                            ("q_continue", self.q_continue), ("x_emb", self.x_emb), ("reset", self.reset),
                            *self._constants.items()):
            self._bind(name, array)

    def reslot(self, keep: np.ndarray, width: int) -> None:
        kept = [a[keep] for a in self.state]
        self.resize(width)
        for array, rows in zip(self.state, kept, strict=True):
            array[: len(rows)] = rows

    def set_inputs(self, tokens: np.ndarray, puzzle_identifiers: np.ndarray) -> None:
        feeds = {"tokens": np.ascontiguousarray(tokens, dtype=np.int32)}
        if self.uses_ids:
            feeds["puzzle_identifiers"] = np.ascontiguousarray(puzzle_identifiers, dtype=np.int32)
        self.x_emb[...] = self.init_request.infer(feeds)[0]

    def step(self, reset: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.reset[...] = reset
        for name, array in (("z_H", self.state[0]), ("z_L", self.state[1]), ("z_H_next", self.spare[0]),
                            ("z_L_next", self.spare[1])):
            self._bind(name, array)
        if len(self.requests) == 1:
            self.request.infer()
        else:
            for request, _ in self.requests:
                request.start_async()
            for request, _ in self.requests:
                request.wait()
        self.state, self.spare = self.spare, self.state
        return self.answer, self.q_halt, self.q_continue

    def read_state(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z_H, z_L = (a[rows].astype(np.float32) for a in self.state)
        return z_H, z_L

    def write_state(self, rows: np.ndarray, z_H: np.ndarray, z_L: np.ndarray) -> None:
        for array, new in zip(self.state, (z_H, z_L), strict=True):
            array[rows] = new  # host arrays, bound to the requests at each step

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "openvino": self.ov.__version__,
            "device": self.device,
            "device_name": self.ov.Core().get_property(self.device, "FULL_DEVICE_NAME"),
            "precision": self.precision,
            **({"static_width": self.static_width} if self.static_width else {}),
            **({"streams": self.streams} if self.streams else {}),
            **({"float_precision": self.float_precision} if self.float_precision else {}),
        }


def create(name: str, export_dir: Path, meta: ExportMetadata, width: int, threads: int | None,
           precision: str, static_width: int | None = None, streams: int | None = None,
           float_precision: str | None = None) -> OpenVinoBackend:
    """The registry's factory: `openvino` on the CPU, `openvino:DEVICE` on an Intel GPU or NPU."""
    return OpenVinoBackend(export_dir, meta, width, threads, precision, name.partition(":")[2] or "CPU",
                           static_width=static_width, streams=streams, float_precision=float_precision)


def _at_width(model: Any, width: int) -> Any:
    """`model` with its dynamic (batch) dimension fixed to `width`."""
    model.reshape({port.get_any_name(): [width if d.is_dynamic else d.get_length() for d in port.get_partial_shape()]
                   for port in model.inputs if port.get_partial_shape().rank.get_length() > 0})
    return model


def unusable(name: str, export_dir: Path | None = None, meta: ExportMetadata | None = None) -> str | None:
    """Why OpenVINO cannot run on this device here."""
    try:
        import openvino
    except ImportError:
        return "openvino is not installed"
    device = name.partition(":")[2] or "CPU"
    found = openvino.Core().available_devices
    return None if device in found else f"OpenVINO finds no {device} (it has {', '.join(found)})"


def lowered_precisions(name: str) -> list[str]:
    """The precisions below fp32 this device runs natively (OpenVINO lowers inside the compiled model)."""
    return [p for p in native_precisions(name.partition(":")[2] or "CPU") if p != "fp32"]
