"""The command line: every command documents itself; --version answers."""

from __future__ import annotations

import pytest

from trm_edge import __version__

from conftest import run_cli

COMMANDS = ["convert", "info", "doctor", "export", "build-engine", "solve", "bench", "calibrate"]


def test_version() -> None:
    assert run_cli("--version").stdout.strip() == f"trm-edge {__version__}"


def test_top_level_help_lists_every_command() -> None:
    shown = run_cli("--help").stdout
    for command in COMMANDS:
        assert command in shown


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    shown = run_cli(command, "--help").stdout
    assert "Usage:" in shown and "--help" in shown
    assert len(shown.splitlines()) > 6  # a description and its options, not a bare usage line


def test_doctor_reports_the_environment() -> None:
    shown = run_cli("doctor").stdout
    for row in ("python", "torch", "onnxruntime", "tensorrt", "GPU"):
        assert row in shown


@pytest.mark.parametrize(("value", "on"), [("1", True), ("yes", True), ("0", False), ("false", False), ("No", False),
                                           ("off", False), ("", False), (" 0 ", False)])
def test_every_switch_reads_0_as_off(value: str, on: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """TRM_EDGE_REQUIRE_JS=0 once counted as set; every switch is parsed as the bf16 one is."""
    from trm_edge.hardware import NO_NATIVE_BF16_ENV, native_half_precision_switched_off

    from conftest import REQUIRE_JS_ENV, js_tools_required

    monkeypatch.setenv(REQUIRE_JS_ENV, value)
    monkeypatch.setenv(NO_NATIVE_BF16_ENV, value)
    assert js_tools_required() is on and native_half_precision_switched_off() is on
