"""Every matrix product of a step runs in the step's precision (OpenVINO's own per-op counters,
runtime/backends/openvino_profile.py): a bf16 step has no fp32 product kernel (the MLP across
positions ran fp32 until the backend's load-time rewrite, runtime/backends/openvino_rewrites.py),
and the rewrite changes no answer (tests/test_openvino_rewrites.py). The int8 step's products:
tests/test_int8.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trm_edge.contract.export_dir import read_metadata
from trm_edge.runtime.backends.openvino import native_precisions
from trm_edge.runtime.backends.openvino_profile import profile_step

from conftest import TRAINED

pytestmark = pytest.mark.precision_dependent


@pytest.mark.skipif("bf16" not in native_precisions("CPU"), reason="this CPU runs no bf16 natively (or "
                    "TRM_EDGE_NO_NATIVE_BF16 is set): there is no bf16 step to hold")
def test_a_bf16_step_runs_every_product_in_bf16(trained_export: Path) -> None:
    meta = read_metadata(trained_export)
    tokens = (np.load(TRAINED / "test_300.npz")["puzzles"][:4] + 1).astype(np.int32)
    profile = profile_step(trained_export, meta, "bf16", 4, tokens=tokens)
    products = profile.products()
    # The trained fixture's step: 20 blocks x (3 token-mixing + 3 channel products) and the two heads.
    assert len(products) >= 120, [(p.op, p.kernel) for p in products][:10]
    fp32 = [(p.name, p.op, p.kernel) for p in products if "bf16" not in p.kernel]
    assert not fp32, fp32[:5]
