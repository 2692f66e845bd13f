"""One table of backends (runtime/backends/registry.py): every name, width rule, help line, doctor
row and bench matrix row comes from it, and each entry's module provides what the table promises."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from trm_edge.app.cli_common import BACKEND_HELP
from trm_edge.contract.export_dir import read_metadata
from trm_edge.errors import TrmEdgeError
from trm_edge.runtime.backends.registry import BACKENDS, doctor_rows, entry, initial_width, is_resizable, matrix


def test_a_backend_off_the_cpu_keeps_its_width(trained_export: Path) -> None:
    """openvino:GPU keeps its state on the device (can_reslot is False there), so it must open at the
    full batch: a prefix match on 'openvino' once opened it at 64 slots that never grew."""
    meta = read_metadata(trained_export)
    assert initial_width("openvino", meta, 256, 64) == initial_width("openvino:CPU", meta, 256, 64) == 64
    assert initial_width("openvino:GPU", meta, 256, 64) == initial_width("openvino:NPU", meta, 256, 64) == 256
    assert initial_width("ort-cpu", meta, 256, 64) == 64
    assert initial_width("ort-cuda", meta, 256, 64) == initial_width("tensorrt", meta, 256, 64) == 256
    assert not is_resizable("openvino:GPU") and is_resizable("openvino")
    fixed = replace(meta, dynamic_batch=False, batch_size=8)
    assert initial_width("ort-cpu", fixed, 8, 64) == 8  # a fixed-batch export runs at its batch


def test_every_entry_names_a_module_that_provides_it() -> None:
    for name, found in BACKENDS.items():
        module = found.load()
        assert callable(module.create) and callable(module.unusable), name
        assert found.runs_on in ("cpu", "gpu") and found.extra and found.summary
        assert name in BACKEND_HELP
    assert [row[0] for row in doctor_rows()] == [f"backend {name}" for name in BACKENDS]
    assert {backend for backend, _ in matrix()} == set(BACKENDS)
    assert ("openvino", "bf16") in matrix() and ("ort-cpu", "auto") in matrix()


@pytest.mark.parametrize("name", ["gpu", "ort-cpu:GPU", "openvino:", "onnx"])
def test_an_unknown_backend_is_a_clear_error_that_lists_them(name: str) -> None:
    with pytest.raises(TrmEdgeError, match="is not one of auto, ort-cpu") as err:
        entry(name)
    assert "openvino[:DEVICE]" in str(err.value)
