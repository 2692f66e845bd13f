"""What one KServe v2 HTTP inference request may declare, checked before Triton sees it.

Triton's HTTP endpoint (2.51 and other releases before upstream's JSON size checks) allocates each
JSON input from the shape the client declares before it compares the shape with the model:
`"shape": [1099511627776, 81]` aborts the whole server (`std::bad_alloc`), and the model's
`max_batch_size` and `dims` are checked only after that allocation. The binary extension sends each
input's bytes after the JSON header (`binary_data_size` says how many); those sizes must add up to
the body and agree with the declared shape.

So every input a request declares is bounded here by the model's limits: a known input name, rows
up to max_batch, values per row as the model takes, JSON `data` of the declared count, binary sizes
that match shape and datatype. The limits come from the solver contract (`solver_limits`) or from
the config.pbtxt files of a model repository (`repository_limits`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trm_edge.errors import TrmEdgeError

JSON_BYTES_PER_VALUE = 24  # a generous bound on one number written as JSON text
MAX_TEXT_BYTES = 1 << 16  # one puzzle's text
BYTES_PREFIX = 4  # the binary extension writes each BYTES element as a 4-byte length, then the bytes
# KServe datatype -> bytes per element (BYTES is variable: a length prefix and the text).
DATATYPE_BYTES = {"BOOL": 1, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "FP16": 2, "BF16": 2, "UINT32": 4,
                  "INT32": 4, "FP32": 4, "UINT64": 8, "INT64": 8, "FP64": 8}
# Triton's config.pbtxt data types -> KServe datatypes.
CONFIG_DATATYPES = {f"TYPE_{name}": name for name in DATATYPE_BYTES} | {"TYPE_STRING": "BYTES"}


@dataclass(frozen=True)
class InputLimit:
    values_per_row: int  # elements after the batch dimension
    bytes_per_value: int  # the most one element may take (for BYTES: its longest text)


@dataclass(frozen=True)
class ModelLimits:
    max_batch: int
    inputs: dict[str, InputLimit]

    @property
    def max_body_bytes(self) -> int:
        per_row = sum(
            lim.values_per_row * (max(lim.bytes_per_value, JSON_BYTES_PER_VALUE) + BYTES_PREFIX)
            for lim in self.inputs.values()
        )
        return self.max_batch * per_row + (1 << 20)


def solver_limits(seq_len: int, max_batch: int) -> ModelLimits:
    """The bounds of the solver contract (contract.solver_inputs)."""
    return ModelLimits(
        max_batch,
        {
            "tokens": InputLimit(seq_len, 4),
            "puzzle_identifiers": InputLimit(1, 4),
            "puzzle": InputLimit(1, MAX_TEXT_BYTES),
        },
    )


def repository_limits(repo: Path) -> dict[str, ModelLimits]:
    """Limits for every model of a Triton model repository, read from its config.pbtxt files with
    Triton's own schema (the serve extra's tritonclient)."""
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        raise TrmEdgeError("reading a model repository needs the serve extra: pip install 'trm-edge[serve]'") from None
    configs = sorted(Path(repo).glob("*/config.pbtxt"))
    if not configs:
        raise TrmEdgeError(f"{repo} holds no model (no */config.pbtxt): give the folder `export --format triton` wrote")
    limits = {}
    for path in configs:
        try:
            config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
        except (text_format.ParseError, UnicodeDecodeError) as exc:
            raise TrmEdgeError(f"{path} does not parse as a Triton model configuration: {exc}") from None
        name = config.name or path.parent.name
        inputs = {}
        for tensor in config.input:
            datatype = CONFIG_DATATYPES.get(model_config_pb2.DataType.Name(tensor.data_type))
            if datatype is None or any(d < 0 for d in tensor.dims):
                raise TrmEdgeError(f"{path}: input {tensor.name!r} has a variable shape or datatype; the guard bounds "
                                   "fixed shapes only")
            size = MAX_TEXT_BYTES if datatype == "BYTES" else DATATYPE_BYTES[datatype]
            inputs[tensor.name] = InputLimit(math.prod(tensor.dims), size)
        if config.max_batch_size < 1:
            raise TrmEdgeError(f"{path}: max_batch_size {config.max_batch_size}: the guard bounds batched models only")
        limits[name] = ModelLimits(config.max_batch_size, inputs)
    return limits


class RejectedRequest(Exception):
    """An inference request out of bounds; the text goes back to the client."""


def check_infer_header(header: Any, limits: ModelLimits, binary_bytes: int = 0) -> None:
    """Raise RejectedRequest when a declared input is out of the model's bounds. `binary_bytes`: how
    many bytes follow the JSON header (the binary extension; 0 for a plain JSON request)."""
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        if binary_bytes:
            raise RejectedRequest("binary data without a JSON header that declares its inputs")
        return  # not a well-formed KServe request, and nothing to allocate: Triton answers it
    declared_binary = 0
    for spec in header["inputs"]:
        if not isinstance(spec, dict):
            raise RejectedRequest("each entry of 'inputs' must be an object with name, shape and datatype")
        name, shape = spec.get("name"), spec.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise RejectedRequest(f"input {name!r}: 'shape' must be a list of integers")
        if any(d < 0 for d in shape):
            raise RejectedRequest(f"input {name!r}: shape {shape} has a negative dimension")
        limit = limits.inputs.get(name) if isinstance(name, str) else None
        if limit is None:
            raise RejectedRequest(f"input {name!r} is not an input of this model; it takes "
                                  f"{', '.join(sorted(limits.inputs))}")
        if not shape or shape[0] > limits.max_batch:
            raise RejectedRequest(
                f"input {name!r}: shape {shape} has more than max_batch_size {limits.max_batch} rows"
            )
        per_row = math.prod(shape[1:])
        if per_row > limit.values_per_row:
            raise RejectedRequest(
                f"input {name!r}: shape {shape} holds {per_row} values a row; the model takes {limit.values_per_row}"
            )
        count = shape[0] * per_row
        data, parameters = spec.get("data"), spec.get("parameters")
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is None:
            if isinstance(data, list) and _count(data) != count:
                raise RejectedRequest(f"input {name!r}: shape {shape} declares {count} values, 'data' holds "
                                      f"{_count(data)}")
            continue
        declared_binary += _check_binary_size(str(name), shape, spec.get("datatype"), size, limit, count, data)
    if declared_binary != binary_bytes:
        raise RejectedRequest(f"the inputs' binary_data_size add up to {declared_binary} bytes but "
                              f"{binary_bytes} follow the JSON header")


def _check_binary_size(name: str, shape: list[int], datatype: Any, size: Any, limit: InputLimit, count: int,
                       data: Any) -> int:
    """One input's binary_data_size against its shape and datatype; returns the size."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RejectedRequest(f"input {name!r}: binary_data_size must be a non-negative integer, got {size!r}")
    if data is not None:
        raise RejectedRequest(f"input {name!r}: give either 'data' or binary_data_size, not both")
    if datatype == "BYTES":
        # each element: a 4-byte length and at most the model's longest text
        low, high = count * BYTES_PREFIX, count * (BYTES_PREFIX + limit.bytes_per_value)
        if not low <= size <= high:
            raise RejectedRequest(f"input {name!r}: {count} BYTES elements take {low} to {high} bytes, "
                                  f"binary_data_size says {size}")
        return size
    if not isinstance(datatype, str) or datatype not in DATATYPE_BYTES:
        raise RejectedRequest(f"input {name!r}: datatype {datatype!r} is not a KServe datatype")
    expected = count * DATATYPE_BYTES[datatype]
    if size != expected:
        raise RejectedRequest(f"input {name!r}: shape {shape} of {datatype} is {expected} bytes, "
                              f"binary_data_size says {size}")
    return size


def _count(data: list[Any]) -> int:
    """Values in a (possibly nested) JSON data list, as KServe allows either form."""
    total, stack = 0, [data]
    while stack:
        for item in stack.pop():
            if isinstance(item, list):
                stack.append(item)
            else:
                total += 1
    return total
