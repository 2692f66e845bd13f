"""The one exception type users see: a message that says what is wrong and what to do."""

from __future__ import annotations

from pathlib import Path


class TrmEdgeError(Exception):
    """Bad input or an unmet requirement, explained for a person (the CLI prints it without a traceback)."""


class ExportCheckFailed(TrmEdgeError):
    """A check of an export being built failed (its graphs, programs, solve.onnx, an engine, its
    calibration): the export writer keeps the build as NAME.failed-validation, marked failed so the
    runtime refuses it, and leaves NAME as it was (export/exporter.py `replacing_export`)."""

    def __init__(self, what: str, fix: str = "") -> None:
        self.what, self.fix = what, fix
        super().__init__(self.message())

    def message(self, kept_at: Path | None = None, unchanged: Path | None = None) -> str:
        """One line: what failed, where the build was kept (and that NAME was left), what to do."""
        where = ""
        if kept_at is not None:
            left = f"; the export at {unchanged} was left as it was" if unchanged is not None else ""
            where = f" (kept for inspection at {kept_at}; the runtime refuses it{left})"
        return f"{self.what}{where}" + (f". {self.fix}" if self.fix else "")


class CheckpointError(TrmEdgeError):
    """A file that is not a usable trm-edge or official checkpoint."""


class ConfigError(TrmEdgeError):
    """A model configuration that is incomplete, inconsistent or unsupported."""


class TrmEdgeWarning(UserWarning):
    """Something a user should know that does not stop the work: the message says why and what to
    do (the CLI prints each as one `note:` line)."""


class PassedOverWarning(TrmEdgeWarning):
    """`auto` passed over a backend or precision that might have been faster."""


class TaskCodecWarning(TrmEdgeWarning):
    """An export's task has no codec here: it runs on raw tokens, without text puzzles or verified halting."""
