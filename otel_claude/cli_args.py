"""Argument parsing shared by the `otel-claude` subcommands (whose options live in `tuner`, `claude_sim` and here).

Two habits of the tools people already use: a bad value is one line under a short usage line (not the whole block
of options, which `--help` shows), and every option's help ends with its default.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn

__all__ = ["CommandParser", "HelpFormatter", "whole_number"]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends ` (default: X)` to an option's help, except where the default says nothing (unset, off, empty)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or not action.option_strings
            or default is argparse.SUPPRESS
            or default is None
            or isinstance(default, bool)
            or default in ((), [])
        ):
            return text
        return f"{text} (default: %(default)s)"


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are two lines: the usage, then `PROG: error: ...` (exit status 2).

    Give it a short `usage` ("%(prog)s [options] INPUT..."): argparse's generated one lists every option.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        usage = self.format_usage().rstrip()
        self.exit(2, f"{usage}\n{self.prog}: error: {message}\n")



def whole_number(low: int) -> Callable[[str], int]:
    """An argparse `type` for a whole number of at least `low`, with a one-line error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse
