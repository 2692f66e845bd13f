"""The command line: every command documents itself; --version answers; convert's --set, doctor's
runtime options and info on an export (tests/test_cli_rules.py holds the rules every command keeps)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from trm_edge import __version__

from conftest import run_cli, run_cli_in_process

COMMANDS = ["convert", "info", "doctor", "export", "build-engine", "solve", "solve-arc", "bench", "calibrate", "serve",
            "slice-puzzles", "demo", "train", "data"]


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


@pytest.mark.parametrize(("setting", "said"), [
    ("foo=1", "KEY one of seq_len, vocab_size, num_puzzle_identifiers, H_cycles, L_cycles, num_heads, pos_encodings, "
              "halt_max_steps, task"),
    ("H_cycles", "give KEY=VALUE"),
    ("H_cycles=two", "H_cycles is a whole number"),
    ("pos_encodings=abs", "pos_encodings is one of rope, learned, none"),
])
def test_convert_set_says_what_is_wrong_in_one_line(setting: str, said: str, tmp_path: Path) -> None:
    """convert's model settings are one --set KEY=VALUE; a bad one fails before the checkpoint is read."""
    proc = run_cli_in_process("convert", str(tmp_path / "none.pt"), "-o", str(tmp_path / "x.safetensors"),
                              "--set", setting)
    assert proc.returncode == 2 and said in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_convert_settings_are_typed() -> None:
    from trm_edge.app.cli import convert_settings

    assert convert_settings(["H_cycles=3", "pos_encodings=learned", "task=maze"]) == {
        "H_cycles": 3, "pos_encodings": "learned", "task": "maze"}


@pytest.mark.parametrize("option", [["--measure"], ["--backend", "int8"], ["--threads", "2"], ["--slots", "8"]])
def test_doctor_runtime_options_go_with_an_export(option: list[str]) -> None:
    proc = run_cli_in_process("doctor", *option)
    assert proc.returncode == 2 and "give --export DIR too" in proc.stderr


def test_info_on_an_export_shows_its_metadata(trained_export: Path, tmp_path: Path) -> None:
    """info EXPORT_DIR reads trm_edge.json (and the choices auto remembered), not a checkpoint."""
    from trm_edge.contract.export_dir import read_metadata
    from trm_edge.runtime.backends.choice_cache import CachedChoice, choice_key, write_cached_choice

    export = tmp_path / "export"
    shutil.copytree(trained_export, export)
    meta = read_metadata(export)
    key = choice_key(export, meta, "auto", "auto", 16, None)
    write_cached_choice(export, key, CachedChoice("ort-cpu", "fp32", "the fastest step measured here",
                                                  {"ort-cpu fp32": 1.5}))
    shown = run_cli_in_process("info", str(export))
    assert shown.returncode == 0, shown.stderr
    for row in ("task", "sudoku", "graph batch", "dynamic", "halting", "step.onnx", "validation", "auto remembered",
                "ort-cpu fp32"):
        assert row in shown.stdout, row
    summary = json.loads(run_cli_in_process("info", str(export), "--json").stdout)
    assert summary["task"]["name"] == "sudoku" and summary["batch"] == {"dynamic": True, "size": None}
    assert summary["precision"] == meta.precision and "step.onnx" in summary["files"]
    assert summary["remembered_choices"][0]["backend"] == "ort-cpu"
    assert summary["remembered_choices"][0]["asked"]["timed width"] == 16
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli_in_process("info", str(empty))
    assert proc.returncode == 2 and "not a trm-edge export directory" in proc.stderr
