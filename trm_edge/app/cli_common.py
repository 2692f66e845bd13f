"""What every trm-edge command shares: the options the runtime commands take, declared once; the
consoles; and the error handler. (How their help is shown: command_classes.py.)"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable
from typing import TextIO

import typer
from rich.console import Console
from rich.markup import escape

from trm_edge.env_flags import flag_is_set
from trm_edge.errors import TrmEdgeError, TrmEdgeWarning
from trm_edge.runtime.backends.registry import backend_names
from trm_edge.runtime.backends.timing import MEASURING_STATUS
from trm_edge.runtime.options import SolverOptions, split_backend

BACKEND_HELP = (f"BACKEND[:PRECISION]. BACKEND: {backend_names().replace(', ', ' | ')} (auto: on a GPU the first "
                "that works; on a CPU the fastest measured here for this export; doctor --export DIR shows the "
                "figures). PRECISION: auto (the export's, or bf16 where the CPU runs it natively, or its int8 step, "
                "once checked and measured faster) | fp32 | bf16 | fp16 (an fp32 export lowered on OpenVINO) | int8 "
                "(export --precision int8's step). A precision alone is auto's backend at it: --backend int8.")
HALT_HELP = ("auto (verified where answers can be checked) | verified | calibrated | model | threshold:P | stable:K | "
             "fixed:N | ... (docs/halting.md)")

# The runtime options every command that opens a solver takes (solve, solve-arc, bench, calibrate,
# serve, doctor), declared once (typer reads them as defaults) and made into one SolverOptions by
# `solver_options`. docs/architecture.md's glossary says what each name means.
BACKEND = typer.Option("auto", "--backend", help=BACKEND_HELP)
HALT = typer.Option("auto", "--halt", help=HALT_HELP)
THREADS = typer.Option(None, "--threads", help="CPU threads for the backend [all usable cores; serve: cores / "
                       "instances].")
MAX_STEPS = typer.Option(None, "--max-steps", help="Bound on steps per puzzle [model's]; more than training's lets "
                         "hard puzzles keep searching (hard Sudokus: 128).")
# Every command that reads an export names it EXPORT (the glossary's word).
EXPORT_ARGUMENT = typer.Argument(..., metavar="EXPORT", help="Export directory (trm-edge export CHECKPOINT -o DIR).")
SLOTS = typer.Option(None, "--slots", help="Puzzles in flight at once, the solver's width [64; an export --batch N: "
                     "N, the only width it runs].")


def solver_options(backend: str = "auto", halt: str = "auto", max_steps: int | None = None,
                   threads: int | None = None, slots: int | None = None, measure: bool = False) -> SolverOptions:
    """The one SolverOptions a runtime command opens its solver with, from the shared options above."""
    name, precision = split_backend(backend)
    return SolverOptions(backend=name, precision=precision, halt=halt, max_steps=max_steps, threads=threads,
                         slots=slots, measure=measure)


# Piped output (CI logs, files) gets wide tables rather than rich's 80-column default.
console = Console() if sys.stdout.isatty() else Console(width=160)
err_console = Console(stderr=True, soft_wrap=True)  # an error is one line, not wrapped at 80


def _one_line_notes(python_show: Callable[..., None]) -> Callable[..., None]:
    """A `warnings.showwarning` that prints trm-edge's own warnings as one `note:` line on stderr
    and leaves the others to `python_show`."""

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: TextIO | None = None,
             line: str | None = None) -> None:
        if issubclass(category, TrmEdgeWarning):
            err_console.print(f"[yellow]note:[/] {escape(str(message))}", markup=True, highlight=False)
        else:
            python_show(message, category, filename, lineno, file, line)

    return show


def run_app(app: typer.Typer) -> None:
    """Run the CLI with the one error handler every command shares: a TrmEdgeError (bad input, a
    missing requirement) is one line and exit code 2; anything unexpected is one line naming it
    and exit code 1, with the traceback only when TRM_EDGE_DEBUG is set."""
    shown_before = warnings.showwarning
    warnings.showwarning = _one_line_notes(shown_before)
    # auto's first measurement on an export or width takes seconds: a spinner says so, on a terminal only.
    measuring = MEASURING_STATUS.set(err_console.status if err_console.is_terminal else None)
    try:
        app(standalone_mode=True)
    except TrmEdgeError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if flag_is_set("TRM_EDGE_DEBUG"):
            raise
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} (a bug in trm-edge: please "
            "report it; TRM_EDGE_DEBUG=1 shows the traceback)",
            markup=True,
            highlight=False,
        )
        sys.exit(1)
    finally:
        warnings.showwarning = shown_before  # the CLI's own runs in-process (tests) leave no trace
        MEASURING_STATUS.reset(measuring)


def whole_number(text: str) -> int | None:
    """A count given in an option's value (`--budget N:...`, `--votes V:T...`), else None. ASCII digits
    only: str.isdigit also takes a superscript two, which int() then refuses."""
    return int(text) if text.isascii() and text.isdigit() else None


def positive_scale(text: str) -> float | None:
    """A positive, finite number given in an option's value (a noise scale), else None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None
