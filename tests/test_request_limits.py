"""The HTTP guard's bounds on what one inference request may declare (runtime/serving/limits.py):
JSON shapes and data counts, and binary-extension sizes against shape, datatype and body."""

from __future__ import annotations

import pytest

from trm_edge.runtime.serving.limits import RejectedRequest, check_infer_header, solver_limits

LIMITS = solver_limits(seq_len=81, max_batch=16)


def _binary(name: str, shape: list[int], datatype: str, size: object) -> dict:  # type: ignore[type-arg]
    return {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "parameters": {"binary_data_size": size}}]}


def test_well_formed_requests_pass() -> None:
    check_infer_header({"inputs": [{"name": "tokens", "shape": [2, 81], "datatype": "INT32", "data": [0] * 162}]},
                       LIMITS)
    check_infer_header(_binary("tokens", [3, 81], "INT32", 3 * 81 * 4), LIMITS, binary_bytes=3 * 81 * 4)
    two = {"inputs": [*_binary("tokens", [2, 81], "INT32", 648)["inputs"],
                      *_binary("puzzle_identifiers", [2, 1], "INT32", 8)["inputs"]]}
    check_infer_header(two, LIMITS, binary_bytes=656)
    check_infer_header(_binary("puzzle", [2, 1], "BYTES", 2 * (4 + 81)), LIMITS, binary_bytes=170)
    check_infer_header("not a KServe request", LIMITS)  # nothing to allocate: Triton answers it


@pytest.mark.parametrize(("header", "binary_bytes", "words"), [
    (_binary("tokens", [1, 81], "INT32", 320), 320, "is 324 bytes, binary_data_size says 320"),
    (_binary("tokens", [1, 81], "INT32", 324), 4, "add up to 324 bytes but 4 follow"),
    (_binary("tokens", [1 << 40, 81], "INT32", 4), 4, "more than max_batch_size 16 rows"),
    (_binary("tokens", [1, 81], "INT32", 1 << 40), 4, "binary_data_size says 1099511627776"),
    (_binary("tokens", [1, 81], "INT32", -4), 0, "non-negative integer"),
    (_binary("tokens", [1, 81], "INT32", "324"), 0, "non-negative integer"),
    (_binary("tokens", [1, 81], "INT33", 324), 324, "not a KServe datatype"),
    (_binary("puzzle", [2, 1], "BYTES", 7), 7, "2 BYTES elements take 8 to"),
    (_binary("puzzle", [1, 1], "BYTES", 1 << 20), 1 << 20, "binary_data_size says 1048576"),
    (_binary("x_emb", [1, 81], "FP32", 324), 324, "'x_emb' is not an input of this model"),
    ({"inputs": [{"name": "tokens", "shape": [1, 81], "datatype": "INT32", "data": [0] * 81,
                  "parameters": {"binary_data_size": 324}}]}, 324, "either 'data' or binary_data_size"),
    ({"inputs": [{"name": "tokens", "shape": [1, 81], "datatype": "INT32", "data": [0]}]}, 0,
     "declares 81 values, 'data' holds 1"),
    ({"inputs": [{"name": "tokens", "shape": [1, 1 << 40], "datatype": "INT32", "data": [0]}]}, 0,
     "holds 1099511627776 values a row"),
    ({"inputs": [{"name": "tokens", "shape": [-1, 81], "datatype": "INT32", "data": [0]}]}, 0, "negative"),
    ({"inputs": ["tokens"]}, 0, "must be an object"),
    ("not a KServe request", 12, "binary data without a JSON header"),
])
def test_out_of_bounds_requests_are_refused_with_the_reason(header: object, binary_bytes: int, words: str) -> None:
    with pytest.raises(RejectedRequest, match=words.replace("(", r"\(").replace(")", r"\)")):
        check_infer_header(header, LIMITS, binary_bytes)
