"""The export formats are one table (export/format_table.py): it drives `export --format` and its
options, the help, doctor, bench --backend all and README's list; a new format is one writer plus one entry."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from trm_edge.errors import TrmEdgeError
from trm_edge.export.files import EXPORT_DIRECTORY
from trm_edge.export.format_table import FORMATS, ExportFormat, FormatOption, get_format, options_help, parse_options

from conftest import REPO, run_cli_in_process


def write_summary(checkpoint: Path, output: Path | None, onnx: Any, settings: dict[str, Any],
                  console: Console) -> Path:
    """A toy format: the validated ONNX export plus summary.json (what the export's metadata says)."""
    from trm_edge.contract.export_dir import read_metadata
    from trm_edge.export.formats import export_onnx_format

    directory = export_onnx_format(checkpoint, output, onnx, console)
    meta = read_metadata(directory)
    summary = {"task": meta.task, "hidden": meta.model.hidden_size, "label": settings["label"]}
    (directory / "summary.json").write_text(json.dumps(summary, indent=settings["indent"]))
    return directory


TOY = ExportFormat("summary", "the export plus summary.json", (*EXPORT_DIRECTORY, "summary.json"), write_summary,
                   "the ONNX export's", "a person reading JSON", options=(
                       FormatOption("--indent", "indent", int, 2, "JSON indent."),
                       FormatOption("--label", "label", str, "toy", "A name to record.")))


@pytest.fixture
def toy_format(monkeypatch: pytest.MonkeyPatch) -> ExportFormat:
    monkeypatch.setitem(FORMATS, TOY.name, TOY)
    return TOY


def test_a_format_is_one_writer_and_one_entry(toy_format: ExportFormat, tiny_checkpoint: Path,
                                              tmp_path: Path) -> None:
    from trm_edge.export import export

    # The library call: the entry's options by name, its defaults for the rest.
    directory = export(tiny_checkpoint, tmp_path / "lib", "summary", settings={"label": "by library"})
    assert json.loads((directory / "summary.json").read_text()) == {"task": "sudoku", "hidden": 32,
                                                                     "label": "by library"}
    # The command line: its options parsed from the entry, and listed in the help.
    done = run_cli_in_process("export", str(tiny_checkpoint), "-o", str(tmp_path / "cli"), "--format", "summary",
                              "--indent", "0", "--label=by cli", "--validate-steps", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    written = (tmp_path / "cli" / "summary.json").read_text()
    assert written == '{\n"task": "sudoku",\n"hidden": 32,\n"label": "by cli"\n}'  # --indent 0: a line each
    assert "--format summary" in run_cli_in_process("export", "--help").stdout
    with pytest.raises(TrmEdgeError, match="--format summary takes no option workspace"):
        export(tiny_checkpoint, tmp_path / "bad", "summary", settings={"workspace": 2.0})


def test_options_belong_to_their_format_and_errors_say_which() -> None:
    engine = parse_options(get_format("engine"), ["--workspace", "2", "--static", "--opset=18"])
    assert engine.settings == {"workspace": 2.0, "min_batch": 1, "opt_batch": 64, "max_batch": 256}
    assert engine.onnx["opset"] == 18 and engine.onnx["dynamic"] is False and engine.given == {"workspace", "dynamic",
                                                                                               "opset"}
    assert parse_options(get_format("executorch"), []).settings == {"max_batch": 64}
    assert parse_options(get_format("triton"), []).settings["max_batch"] == 256
    # LiteRT's batch is fixed, not a bound: export's own --batch, 16 without it.
    assert parse_options(get_format("litert"), []).settings == {} and get_format("litert").fixed_batch == 16
    litert_help = options_help().split("--format litert: ")[1]
    assert "Its files take exactly --batch rows (16 without it" in litert_help
    cases = [
        ("onnx", ["--workspace", "2"], "--workspace goes with --format engine, not --format onnx"),
        ("onnx", ["--max-batch", "8"], "--max-batch goes with --format engine or triton or executorch"),
        ("litert", ["--max-batch", "8"], "--max-batch goes with --format engine or triton or executorch, not --format "
                                         "litert"),
        ("engine", ["--workspace"], "--workspace needs a value"),
        ("engine", ["--workspace", "lots"], "--workspace takes float, not 'lots'"),
        ("onnx", ["--frobnicate"], "no such option --frobnicate"),
        ("onnx", ["second.safetensors"], "export takes one checkpoint"),
    ]
    for name, args, words in cases:
        with pytest.raises(TrmEdgeError, match=words.replace("[", r"\[")):
            parse_options(get_format(name), args)
    with pytest.raises(TrmEdgeError, match="export format 'tflite' is not one of onnx, engine, triton, web, solve"):
        get_format("tflite")


def test_the_command_line_keeps_the_flags_users_know(tmp_path: Path) -> None:
    from trm_edge.app.commands.export import export_command

    # The command's own parameters (the context carries the format's): at most 12.
    assert len(inspect.signature(export_command).parameters) <= 12
    done = run_cli_in_process("export", "shipped:sudoku-small", "-o", str(tmp_path / "x"), "--workspace", "2")
    assert done.returncode == 2 and "--workspace goes with --format engine" in done.stderr
    shown = run_cli_in_process("export", "--help").stdout
    for flag in ("--engine", "--solve-graph", "--precision", "--workspace", "--triton-step", "--ort-web", "--opset",
                 "--max-batch", "--no-calibrate", "--static"):
        assert flag in shown, flag


def test_every_format_is_complete_and_readme_lists_it() -> None:
    from trm_edge.runtime.backends.registry import BACKENDS

    readme = (REPO / "README.md").read_text()
    for entry in FORMATS.values():
        assert entry.writes and entry.validation and entry.runs_on and callable(entry.write()), entry.name
        assert set(entry.backends) <= set(BACKENDS), entry.name
        assert f"`{entry.name}`" in readme.split("Formats")[1].split("\n\n")[0], entry.name
    from trm_edge.export.format_table import doctor_rows

    assert [key for key, _ in doctor_rows()] == [f"format {name}" for name in FORMATS]


@pytest.mark.parametrize("name", ["executorch", "litert"])
def test_a_format_whose_converter_is_not_installed_names_the_install(name: str, tmp_path: Path) -> None:
    """Here for real (this environment has no phone runtimes; tests/edge runs them where they are)."""
    entry = get_format(name)
    if not entry.missing():
        pytest.skip(f"{name}'s converter is installed here (tests/edge covers it)")
    done = run_cli_in_process("export", "shipped:sudoku-small", "-o", str(tmp_path / "x"), "--format", name)
    assert done.returncode != 0
    assert f"--format {name} needs its converter: pip install 'trm-edge[{entry.extra}]'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "x").exists()  # refused before any export work
