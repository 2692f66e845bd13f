"""The classes every trm-edge command and group is made of, so that help reads alike everywhere:
switches shown as switches, arguments by their names in capitals (tests/test_cli_rules.py)."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

# Options that left a command, and what to give instead: a user's old command line gets the fix,
# not only "No such option".
RETIRED_OPTIONS = {
    ("solve", "--versions"): "--versions N became --budget (version-steps a puzzle): --versions 8 at 16 steps is "
                             "about --budget 128:symmetries; see trm-edge solve --help",
}


def _shown_plainly(param: object) -> None:
    """A switch with nothing after it and an argument by its name in capitals (CHECKPOINT,
    PUZZLES...), as click writes them. typer 0.29's rich help writes a switch as `--json <bool>`
    (its type column takes no notice of is_flag) and a required argument as `{name}` in the usage
    line; a metavar is the public setting both read (an empty one leaves the type column blank)."""
    if isinstance(param, TyperArgument):
        if param.metavar is None:
            param.metavar = str(param.name).upper() + ("..." if param.nargs != 1 else "")
    elif getattr(param, "is_flag", False) and getattr(param, "metavar", None) is None:
        param.metavar = ""  # type: ignore[attr-defined]  # an option (the flag test says so)


class _ShownPlainly:
    """What commands and groups share: every parameter, --help included, shown plainly."""

    params: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            _shown_plainly(param)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        _shown_plainly(option)
        return option


class Command(_ShownPlainly, TyperCommand):
    """Every trm-edge command: switches shown as switches, arguments by their metavar."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except Exception as exc:  # typer's own copy of click's NoSuchOption, a UsageError
            retired = RETIRED_OPTIONS.get((str(self.name), str(getattr(exc, "option_name", ""))))
            if retired is None or type(exc).__name__ != "NoSuchOption":
                raise
            exc.message, exc.possibilities = retired, None  # type: ignore[attr-defined]
            raise

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """`[OPTIONS] CHECKPOINT [PUZZLES]...`: a required argument bare, an optional one in brackets."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                pieces.append(str(param.metavar) if param.required else f"[{param.metavar}]")
            else:
                pieces += param.get_usage_pieces(ctx)
        return pieces


class Group(_ShownPlainly, TyperGroup):
    """trm-edge and its command groups (data): their switches (--help, --version) shown as switches."""


class App(typer.Typer):
    """A typer app whose groups are `Group` and whose commands are `Command` unless told otherwise."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(cls=settings.pop("cls", Group), **settings)

    def command(self, name: str | None = None, *, cls: type[TyperCommand] | None = None,
                **settings: Any) -> Any:
        return super().command(name, cls=cls or Command, **settings)
