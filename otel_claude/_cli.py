"""The `otel-claude` command: one argparse parser, a subcommand per job.

Each subcommand's module defines its options (`add_arguments(parser)`) and its work (`run(args) -> int`). Those
modules import none of the extras' libraries at load, so `--help` and option errors work on a bare
`pip install otel-claude`; the work starts only once the libraries of the subcommand's extra are found, else one
line names the extra to install (exit status 1).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from importlib import metadata

from ._version import __version__
from .cli_args import CommandParser


@dataclass(frozen=True)
class _Command:
    module: str  # defines add_arguments(parser) and run(args) -> int, or, with `passthrough`, main(argv) -> int
    help: str
    extra: str | None = None  # what `pip install "otel-claude[EXTRA]"` adds for it
    needs: tuple[str, ...] = ()  # top-level modules the work imports (checked before it starts)
    passthrough: bool = False  # the module parses its own arguments


_COMMANDS: dict[str, _Command] = {
    "tune": _Command("tuner.cli", "turn exported spans into a policy file and a report", "tuner",
                     ("numpy", "sklearn")),
    "check": _Command("otel_claude._check", "validate policy files or URLs (exit status 1 when any is invalid)"),
    "sim": _Command("claude_sim.cli", "run the local Anthropic API simulator", "sim", ("aiohttp",)),
    "workload": _Command("claude_sim.workload", "drive a scenario's workload through the instrumented SDK", "sim",
                         ("aiohttp",)),
    # The demo's options live with it (otel_claude_demo.loop), which loads the simulator and the tuner at import.
    "demo": _Command("otel_claude_demo.loop", "run the closed loop end to end on the simulator", "all",
                     ("aiohttp", "numpy", "sklearn"), passthrough=True),
}

# Which extra brings a library a subcommand may import late (an input format, a report type).
_EXTRA_OF = {"numpy": "tuner", "sklearn": "tuner", "zstandard": "tuner", "matplotlib": "tuner", "aiohttp": "sim",
             "chdb": "clickhouse", "clickhouse_connect": "clickhouse"}


def _version() -> str:
    try:
        sdk = metadata.version("anthropic")
    except metadata.PackageNotFoundError:
        sdk = "not installed"
    return f"otel-claude {__version__} (anthropic {sdk}, Python {sys.version.split()[0]})"


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="otel-claude",
        usage="%(prog)s [--version] COMMAND [options]",
        description="OpenTelemetry for the Anthropic SDK that tunes its calls: run `otel-claude COMMAND --help` "
        "for a command's options.",
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=CommandParser)
    for name, command in _COMMANDS.items():
        prog = f"otel-claude {name}"
        if command.passthrough:
            commands.add_parser(name, prog=prog, help=command.help, add_help=False)
            continue
        module = importlib.import_module(command.module)
        sub = commands.add_parser(name, prog=prog, help=command.help, usage=module.USAGE,
                                  description=module.DESCRIPTION, epilog=getattr(module, "EPILOG", None))
        module.add_arguments(sub)
    return parser


def _missing(modules: tuple[str, ...]) -> list[str]:
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def _install_hint(name: str, extra: str, missing: list[str]) -> str:
    return (f"otel-claude {name}: needs the '{extra}' extra ({', '.join(missing)} not installed): "
            f'pip install "otel-claude[{extra}]"')


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:
        build_parser().print_help(sys.stderr)
        return 2
    if not args[0].startswith("-") and args[0] not in _COMMANDS:
        parser = build_parser()
        guess = difflib.get_close_matches(args[0], list(_COMMANDS), n=1)
        hint = f"; did you mean '{guess[0]}'?" if guess else f" (commands: {', '.join(_COMMANDS)})"
        parser.error(f"unknown command {args[0]!r}{hint}")
    if args[0] in _COMMANDS and _COMMANDS[args[0]].passthrough:
        # Before the parser: argparse would take the command's own --help for ours.
        name, rest = args[0], args[1:]
        parsed = None
    else:
        parsed = build_parser().parse_args(args)
        name, rest = parsed.command, []
    command = _COMMANDS[name]
    missing = _missing(command.needs)
    if missing:
        print(_install_hint(name, command.extra or "all", missing), file=sys.stderr)
        return 1
    try:
        module = importlib.import_module(command.module)
        return int((module.main(rest) if parsed is None else module.run(parsed)) or 0)
    except ModuleNotFoundError as err:
        # A library only some inputs or outputs need (zstd files, a ClickHouse input, an HTML report).
        top = (err.name or "").split(".")[0]
        if top not in _EXTRA_OF:
            raise
        print(_install_hint(name, _EXTRA_OF[top], [top]), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
