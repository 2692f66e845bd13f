"""The rules every `trm-edge` command keeps, held over every command (groups included) as click
sees them: few parameters, one name for an output, `--json` a switch, switches shown as switches,
`--threads` wherever a solver opens, every shipped model named in the help that takes one, and the
solver's width called --slots. In-process and cheap: the help is rendered, nothing is run."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from trm_edge.app.cli import app
from trm_edge.shipped import SHIPPED

MAX_PARAMS = 10  # a person holds about this many; --help aside
# The commands that open a solver: each takes --threads, and none a runtime --precision or --batch
# (--backend BACKEND:PRECISION and --slots say those).
SOLVER_COMMANDS = ("solve", "solve-arc", "bench", "calibrate", "serve", "doctor", "demo")
RUNTIME_NAMES_GONE = ("--precision", "--batch", "--max-batch")
# An option that writes a file is -o/--output; these names once said the same thing.
OTHER_OUTPUT_NAMES = re.compile(r"^--(out|out-dir|output-dir|plot|submission|save|log-file|write.*)$")
# An option's help that says it names a file or folder to write ("What to write: onnx | ..." does not).
WRITES = re.compile(r"^(where to write|write|keep .* here|folder for)\b|\b(folder|file) to write\b", re.IGNORECASE)


def _walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _walk(sub, (*path, name))


COMMANDS = dict(_walk(typer.main.get_command(app)))
IDS = [" ".join(path) or "trm-edge" for path in COMMANDS]


def _options(command: Any) -> list[Any]:
    return [p for p in command.params if getattr(p, "param_type_name", "") == "option"]


def _names(option: Any) -> list[str]:
    return [*option.opts, *getattr(option, "secondary_opts", [])]


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("path", COMMANDS, ids=IDS)
def test_at_most_ten_parameters(path: tuple[str, ...]) -> None:
    params = [p.name for p in COMMANDS[path].params]
    assert len(params) <= MAX_PARAMS, f"{' '.join(path)} takes {len(params)} parameters: {params}"


@pytest.mark.parametrize("path", COMMANDS, ids=IDS)
def test_an_output_is_dash_o_output(path: tuple[str, ...]) -> None:
    for option in _options(COMMANDS[path]):
        names = _names(option)
        assert ("-o" in names) == ("--output" in names), f"{' '.join(path)}: {names}: -o and --output go together"
        assert not any(OTHER_OUTPUT_NAMES.match(n) for n in names), f"{' '.join(path)}: {names}: call it -o/--output"
        if not option.is_flag and WRITES.search(option.help or ""):
            assert "--output" in names, f"{' '.join(path)}: {names} writes a file ({option.help!r}): -o/--output"


@pytest.mark.parametrize("path", COMMANDS, ids=IDS)
def test_json_is_a_switch(path: tuple[str, ...]) -> None:
    for option in _options(COMMANDS[path]):
        if "--json" in _names(option):
            assert option.is_flag, f"{' '.join(path)}: --json takes a value; it prints JSON on stdout (-o writes)"


@pytest.mark.parametrize("path", COMMANDS, ids=IDS)
def test_help_shows_switches_as_switches(path: tuple[str, ...]) -> None:
    shown = _help(path)
    assert "<bool>" not in shown, f"{' '.join(path)} --help shows a switch as taking a value"
    usage = [line for line in shown.splitlines() if "Usage:" in line]
    assert usage and not any("{" in line for line in usage), usage


@pytest.mark.parametrize("name", SOLVER_COMMANDS)
def test_every_solver_command_takes_threads_and_no_runtime_precision_or_batch(name: str) -> None:
    assert (name,) in COMMANDS, f"no command {name}"
    names = {n for option in _options(COMMANDS[(name,)]) for n in _names(option)}
    assert "--threads" in names, f"{name} opens a solver without --threads"
    gone = sorted(names & set(RUNTIME_NAMES_GONE))
    assert not gone, f"{name} takes {gone}: --backend BACKEND:PRECISION and --slots N say these"


@pytest.mark.parametrize("name", ["info", "demo"])
def test_help_names_every_shipped_model(name: str) -> None:
    shown = re.sub(r"\s+", " ", _help((name,)).replace("│", " "))
    missing = [model for model in SHIPPED if model not in shown]
    assert not missing, f"{name} --help does not name {missing}"


@pytest.mark.parametrize("path", COMMANDS, ids=IDS)
def test_an_export_argument_is_named_export(path: tuple[str, ...]) -> None:
    """One word for an export folder everywhere (docs/architecture.md's glossary): EXPORT, never
    EXPORT_DIR or MODEL_DIR, in every usage line."""
    usage = next(line for line in _help(path).splitlines() if "Usage:" in line)
    assert not re.search(r"\b(EXPORT_DIR|MODEL_DIR|EXPORT_DIRECTORY)\b", usage), usage


@pytest.mark.parametrize("name", ["solve", "bench", "calibrate", "serve", "doctor"])
def test_the_solvers_width_is_slots(name: str) -> None:
    """Where a command lets the user set the solver's width, it is --slots (the glossary's name)."""
    names = {n for option in _options(COMMANDS[(name,)]) for n in _names(option)}
    assert "--slots" in names, f"{name} sets the solver's width under another name, or not at all"
