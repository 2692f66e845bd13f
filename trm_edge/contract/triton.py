"""What a client sends to and gets from the solver model, and its Triton model configuration.

One request carries one or more puzzles (rows; Triton's batch dimension), either as tokens
(`tokens` INT32 [seq_len], optional `puzzle_identifiers` INT32 [1]) or as text (`puzzle` BYTES [1],
read by the task codec: Sudoku or Maze text). Every row gets `answer` INT32 [seq_len],
`answer_text` BYTES [1] (empty when the task has no text format), `steps` INT32 [1],
`halt_confidence` FP32 [1] and `verified` INT8 [1] (1: the answer is a solution by the task's
rules, 0: it is not, -1: the task cannot verify answers). Clients ask for the outputs they want.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trm_edge.errors import TrmEdgeError

TOKENS, PUZZLE_IDS, PUZZLE_TEXT = "tokens", "puzzle_identifiers", "puzzle"
ANSWER, ANSWER_TEXT, STEPS, HALT_CONFIDENCE = "answer", "answer_text", "steps", "halt_confidence"
VERIFIED = "verified"
DEFAULT_MODEL_NAME = "trm_solver"

# Triton's names for the numpy / ONNX dtypes used here.
TRITON_DTYPES = {"int8": "TYPE_INT8", "int32": "TYPE_INT32", "float32": "TYPE_FP32", "float16": "TYPE_FP16",
                 "bfloat16": "TYPE_BF16", "bool": "TYPE_BOOL", "bytes": "TYPE_STRING"}


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str  # a TRITON_DTYPES key
    dims: tuple[int, ...]  # without the batch dimension; () for one value per row
    optional: bool = False


def solver_inputs(seq_len: int) -> list[Tensor]:
    return [
        Tensor(TOKENS, "int32", (seq_len,), optional=True),
        Tensor(PUZZLE_IDS, "int32", (1,), optional=True),
        Tensor(PUZZLE_TEXT, "bytes", (1,), optional=True),
    ]


def solver_outputs(seq_len: int) -> list[Tensor]:
    return [
        Tensor(ANSWER, "int32", (seq_len,)),
        Tensor(ANSWER_TEXT, "bytes", (1,)),
        Tensor(STEPS, "int32", (1,)),
        Tensor(HALT_CONFIDENCE, "float32", (1,)),
        Tensor(VERIFIED, "int8", (1,)),
    ]


@dataclass(frozen=True)
class Batching:
    max_batch: int = 64  # rows (puzzles) per model execution
    queue_delay_us: int = 1000  # how long Triton may hold a request to merge it with others
    instances: int = 1  # model instances (each its own process and backend session)
    kind: str = "KIND_CPU"  # or KIND_GPU / KIND_MODEL

    def check(self) -> None:
        if self.max_batch < 1:
            raise TrmEdgeError(f"max batch must be at least 1, got {self.max_batch}")
        if self.queue_delay_us < 0:
            raise TrmEdgeError(f"queue delay must be >= 0 microseconds, got {self.queue_delay_us}")
        if self.instances < 1:
            raise TrmEdgeError(f"instances must be at least 1, got {self.instances}")


def model_config(
    name: str,
    backend: str | None,
    platform: str | None,
    inputs: list[Tensor],
    outputs: list[Tensor],
    batching: Batching,
    parameters: dict[str, str] | None = None,
    dynamic_batching: bool = True,
) -> str:
    """config.pbtxt text for one model (checked with Triton's schema by `check_model_config`)."""
    lines = [f'name: "{name}"']
    if backend:
        lines.append(f'backend: "{backend}"')
    if platform:
        lines.append(f'platform: "{platform}"')
    lines.append(f"max_batch_size: {batching.max_batch}")
    lines += _tensors("input", inputs) + _tensors("output", outputs)
    if dynamic_batching:
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {batching.queue_delay_us} }}")
    lines.append(f"instance_group [ {{ count: {batching.instances} kind: {batching.kind} }} ]")
    for key, value in (parameters or {}).items():
        lines.append(f'parameters {{ key: "{key}" value: {{ string_value: "{_escape(value)}" }} }}')
    text = "\n".join(lines) + "\n"
    check_model_config(text)
    return text


def _tensors(kind: str, tensors: list[Tensor]) -> list[str]:
    out = [f"{kind} ["]
    for i, t in enumerate(tensors):
        # A graph tensor of shape (batch,) is one value per row: Triton wants dims [1] reshaped to [].
        shape = f"dims: [ {', '.join(str(d) for d in t.dims)} ]" if t.dims else "dims: [ 1 ] reshape: { shape: [ ] }"
        optional = " optional: true" if t.optional else ""
        comma = "," if i < len(tensors) - 1 else ""
        out.append(f'  {{ name: "{t.name}" data_type: {TRITON_DTYPES[t.dtype]} {shape}{optional} }}{comma}')
    out.append("]")
    return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def check_model_config(text: str) -> Any:
    """Parse config.pbtxt text with Triton's own protobuf schema (from tritonclient); returns the
    message. Without tritonclient installed the check is skipped (None): the serve extra has it."""
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        return None
    try:
        return text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise TrmEdgeError(f"generated Triton model config does not parse with Triton's schema: {exc}") from None


# The model file Triton's Python backend imports: the class lives in the installed package.
MODEL_FILE = (
    '"""trm-edge solver (see trm_edge.runtime.serving.python_model)."""\n\n'
    "from trm_edge.runtime.serving.python_model import TritonPythonModel  # noqa: F401\n"
)
