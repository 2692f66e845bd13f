"""What `--backend auto` and `--precision` choose, and the check a lower precision must pass first
(runtime/backend_choice.py, runtime/precision_check.py, runtime/openvino_backend.py). Real OpenVINO
and ONNX Runtime sessions throughout; on a CPU without native bf16 a bf16 request must be refused,
never run silently in float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trm_edge.errors import TrmEdgeError
from trm_edge.runtime import backend_choice
from trm_edge.runtime.backend import create_backend
from trm_edge.runtime.backend_choice import backend_choices, cpu_choices
from trm_edge.runtime.export_dir import read_metadata
from trm_edge.runtime.openvino_backend import native_precisions
from trm_edge.runtime.precision_check import VALIDATION_FILE, check_precision, read_validation_puzzles
from trm_edge.runtime.solver import Solver

from conftest import TRAINED, run_cli

NATIVE_BF16 = "bf16" in native_precisions("CPU")


def test_auto_on_this_cpu_follows_what_openvino_reports(trained_export: Path) -> None:
    meta = read_metadata(trained_export)
    first = backend_choices("auto", trained_export, meta)[0]
    if NATIVE_BF16:
        assert (first.backend, first.precision) == ("openvino", "bf16")
    else:  # no native bf16: ONNX Runtime fp32, the fastest fp32 step measured
        assert (first.backend, first.precision) == ("ort-cpu", "fp32")
    assert [c.backend for c in cpu_choices("fp16")] == ["ort-cpu"]  # an fp16 export runs as exported


def test_the_export_keeps_its_validation_puzzles(trained_export: Path) -> None:
    meta = read_metadata(trained_export)
    tokens, ids, real = read_validation_puzzles(trained_export, meta)  # type: ignore[misc]
    expected = (np.load(TRAINED / "test_300.npz")["puzzles"][:16] + 1).astype(np.int32)
    np.testing.assert_array_equal(tokens, expected)
    assert real and ids.shape == (16,)


def test_a_damaged_validation_file_is_a_clear_error(trained_export: Path, tmp_path: Path) -> None:
    for item in trained_export.iterdir():
        (tmp_path / item.name).symlink_to(item)
    (tmp_path / VALIDATION_FILE).unlink()
    np.savez(tmp_path / VALIDATION_FILE, tokens=np.full((2, 81), 99), puzzle_identifiers=np.zeros(2), real=True)
    with pytest.raises(TrmEdgeError, match="does not fit this export's model"):
        read_validation_puzzles(tmp_path, read_metadata(tmp_path))


@pytest.mark.skipif(NATIVE_BF16, reason="this CPU runs bf16 natively: OpenVINO honours the request here")
def test_bf16_on_a_cpu_without_it_is_refused_not_run_in_fp32(trained_export: Path) -> None:
    with pytest.raises(TrmEdgeError, match="does not run bf16 natively"):
        Solver.load(trained_export, backend="openvino", precision="bf16")
    proc = run_cli("solve", str(trained_export), "--precision", "bf16", "." * 81, check=False)
    assert proc.returncode == 2 and "bf16" in proc.stderr and "Traceback" not in proc.stderr
    with pytest.raises(TrmEdgeError, match="runs the precision this export was made in"):
        Solver.load(trained_export, backend="ort-cpu", precision="bf16")
    with pytest.raises(TrmEdgeError, match="is not one of auto, fp32, bf16, fp16"):
        Solver.load(trained_export, precision="int4")


def test_the_precision_check_passes_a_faithful_backend_and_refuses_a_perturbed_one(
    trained_export: Path, trained_checkpoint: Path, tmp_path: Path
) -> None:
    """The check compares a backend with its fp32 twin on the export's validation puzzles: the same
    graph on OpenVINO against ONNX Runtime agrees; the same model with its weights perturbed by 5%
    (what a broken lower precision looks like) does not."""
    import torch

    from trm_edge.checkpoint import load_checkpoint, save_checkpoint
    from trm_edge.export.exporter import export_onnx

    meta = read_metadata(trained_export)
    verifier = Solver.load(trained_export, backend="ort-cpu", max_batch=1).verifier
    candidate = create_backend("openvino", trained_export, meta, 4, None, "fp32")
    twin = create_backend("ort-cpu", trained_export, meta, 1, None, "fp32")
    check = check_precision(candidate, twin, trained_export, meta, verifier)
    assert check.passed and check.real_puzzles and check.agreement > 0.999, check.summary()
    assert check.verified is not None and check.verified[0] == check.verified[1] > 0
    assert candidate.batch == 4  # its width is restored after the check

    model = load_checkpoint(trained_checkpoint)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for weight in model.parameters():
            weight.mul_(1 + 0.05 * torch.randn(weight.shape, generator=generator))
    perturbed = export_onnx(save_checkpoint(model, tmp_path / "p.safetensors"), tmp_path / "p", "fp32",
                            validate=False).directory
    impostor = create_backend("ort-cpu", perturbed, read_metadata(perturbed), 1, None, "fp32")
    refused = check_precision(impostor, twin, trained_export, meta, verifier)
    assert not refused.passed, refused.summary()


def test_auto_falls_back_when_a_lower_precision_cannot_run(
    trained_export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CPU that claims bf16 but whose OpenVINO cannot run it (here: claimed for this test on a CPU
    without it) costs nothing but a note: auto runs the next choice."""
    if NATIVE_BF16:
        pytest.skip("this CPU runs bf16 natively: nothing to fall back from")
    monkeypatch.setattr(backend_choice, "_native_lower_precision", lambda device, precision: "bf16")
    solver = Solver.load(trained_export, max_batch=2)
    assert (solver.backend_name, solver.precision) == ("ort-cpu", "fp32")
    assert any("openvino bf16 passed over" in note and "natively" in note for note in solver.choice_notes)
    solver = Solver.load(trained_export, backend="openvino", max_batch=2)
    assert (solver.backend_name, solver.precision) == ("openvino", "fp32")


def test_doctor_says_what_auto_runs_here(trained_export: Path) -> None:
    shown = run_cli("doctor", "--export", str(trained_export)).stdout
    assert "openvino" in shown and "auto (CPU)" in shown and "auto runs" in shown
    assert ("openvino bf16" if NATIVE_BF16 else "ort-cpu fp32") in shown
