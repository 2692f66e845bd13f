"""SolverOptions, the one object a solver opens with: the command line's spelling turned into its
fields, and bad settings refused in one line before any export is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from trm_edge.app.cli_common import solver_options
from trm_edge.errors import TrmEdgeError
from trm_edge.runtime import Solver, SolverOptions
from trm_edge.runtime.options import split_backend


@pytest.mark.parametrize(("spec", "expected"), [
    ("auto", ("auto", "auto")), ("openvino", ("openvino", "auto")), ("openvino:bf16", ("openvino", "bf16")),
    ("openvino:GPU", ("openvino:GPU", "auto")), ("openvino:GPU:fp16", ("openvino:GPU", "fp16")),
    ("int8", ("auto", "int8")), ("ort-cpu:int8", ("ort-cpu", "int8")),
])
def test_the_command_lines_backend_carries_the_precision(spec: str, expected: tuple[str, str]) -> None:
    assert split_backend(spec) == expected
    options = solver_options(spec, halt="fixed:4", slots=8, threads=2)
    assert (options.backend, options.precision, options.halt, options.slots, options.threads) == (*expected,
                                                                                                 "fixed:4", 8, 2)


def test_keywords_change_the_options_given(tmp_path: Path) -> None:
    base = SolverOptions(backend="ort-cpu", slots=4)
    assert base.with_settings(slots=8) == SolverOptions(backend="ort-cpu", slots=8)
    with pytest.warns(DeprecationWarning, match="slots"):
        assert base.with_settings(max_batch=2).slots == 2  # the old name still works, once said
    with pytest.raises(TrmEdgeError, match="unknown solver option batch: the options are backend"):
        base.with_settings(batch=2)


@pytest.mark.parametrize(("settings", "message"), [
    ({"slots": 0}, "slots must lie in"), ({"threads": 0}, "threads must be at least 1"),
    ({"backend": "openvino:bf16"}, "give backend='openvino', precision='bf16'"),
])
def test_bad_settings_are_one_line(settings: dict[str, object], message: str) -> None:
    with pytest.raises(TrmEdgeError, match=message):
        SolverOptions(**settings)  # type: ignore[arg-type]


def test_load_refuses_settings_by_position(tmp_path: Path) -> None:
    """Solver.load(dir, "ort-cpu") was the old positional form: one line naming the new one, before the
    folder is even read."""
    with pytest.raises(TrmEdgeError, match="give settings by name"):
        Solver.load(tmp_path, "ort-cpu")  # type: ignore[arg-type]
