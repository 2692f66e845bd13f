"""A loaded graph against trm_edge.json: every backend checks the same way, with the same words.

A graph file swapped for another, or from another export, fails at load with the tensor that
differs, not mid-solve with a backend's own error.
"""

from __future__ import annotations

from collections.abc import Sequence

from trm_edge.contract.metadata import ExportMetadata
from trm_edge.errors import TrmEdgeError


def check_tensors(meta: ExportMetadata, graph: str, found: dict[str, Sequence[object]], inputs: set[str]) -> None:
    """`found` (tensor name -> shape, a dimension an int where fixed) and the graph's input names
    hold what trm_edge.json says of `graph`: every tensor it names, with its rank and fixed sizes,
    and puzzle_identifiers exactly where the model uses them."""
    spec = meta.graphs[graph]
    for tensor in spec.tensors:
        shape = found.get(tensor.name)
        fixed_differs = shape is not None and (
            len(shape) != len(tensor.shape)
            or any(isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(shape, tensor.shape))  # noqa: B905
        )
        if shape is None or fixed_differs:
            raise TrmEdgeError(
                f"{spec.file} does not match trm_edge.json: tensor {tensor.name!r} is "
                f"{'absent' if shape is None else list(shape)} in the graph, {list(tensor.shape)} in the metadata; "
                "export again"
            )
    takes_ids = "puzzle_identifiers" in inputs
    if graph == "init" and takes_ids != meta.model.uses_puzzle_identifiers:
        raise TrmEdgeError(
            f"{spec.file} does not match trm_edge.json: the graph {'takes' if takes_ids else 'has no'} "
            f"puzzle_identifiers input, the metadata says uses_puzzle_identifiers="
            f"{meta.model.uses_puzzle_identifiers}; export again"
        )
