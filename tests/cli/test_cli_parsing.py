"""`otel-claude`: one parser with subcommands, a version, help with defaults, two-line errors, suggestions."""

from __future__ import annotations

import argparse
import re
from importlib import metadata

import pytest

import otel_claude
from otel_claude._cli import _COMMANDS, build_parser, main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_version_names_the_package_and_the_sdk(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.strip().startswith(f"otel-claude {otel_claude.__version__} (anthropic {metadata.version('anthropic')}")


def test_no_command_prints_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2
    for name in _COMMANDS:
        assert re.search(rf"^\s+{name}\s+\S", err, re.MULTILINE), name


@pytest.mark.parametrize("name", [n for n, c in _COMMANDS.items() if not c.passthrough])
def test_every_option_has_help_and_shows_its_default(name: str) -> None:
    parser = subparsers()[name]
    text = parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{name}: {action.option_strings or action.dest} has no help"
        # On/off switches say what they switch; other options end with their default.
        meaningful = not isinstance(action.default, bool) and action.default not in (None, [], (), argparse.SUPPRESS)
        if action.option_strings and meaningful:
            assert f"(default: {action.default})" in " ".join(text.split()), (name, action.dest)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["tune", "spans.jsonl", "--quality-margin", "5"], "argument --quality-margin: quality margin must be in"),
        (["tune", "spans.jsonl", "--min-samples", "1"], "argument --min-samples: must be at least 2, got 1"),
        (["tune"], "the following arguments are required: INPUT"),
        (["workload", "--sim", "--workers", "0"], "argument --workers: must be at least 1, got 0"),
        (["workload", "--calls", "3"], "one of the arguments --base-url --sim is required"),
        (["sim", "--speed", "-1"], "argument --speed: must be positive, got -1.0"),
        (["check"], "the following arguments are required: POLICY"),
    ],
)
def test_a_bad_value_is_one_line_under_the_short_usage(capsys: pytest.CaptureFixture[str], args: list[str],
                                                        error: str) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    usage, message = err.rstrip("\n").split("\n")
    assert usage.startswith(f"usage: otel-claude {args[0]} ") and len(usage) <= 80
    assert message.startswith(f"otel-claude {args[0]}: error: {error}")


@pytest.mark.parametrize(
    ("args", "suggestion"),
    [
        (["tun", "x"], "unknown command 'tun'; did you mean 'tune'?"),
        (["tune", "x", "--candidates", "claude-sonet-4-6,claude-haiku-4-5"], "claude-sonet-4-6 (did you mean "
                                                                              "claude-sonnet-4-6?)"),
        (["tune", "x", "--judge", "claude-opus-4.6"], "claude-opus-4.6 (did you mean claude-opus-4-6?)"),
    ],
)
def test_unknown_names_get_a_suggestion(capsys: pytest.CaptureFixture[str], args: list[str], suggestion: str) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2
    assert suggestion in err


def test_subcommand_help_lists_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "tune", "--help")
    assert code == 0
    assert out.startswith("usage: otel-claude tune [options] INPUT [INPUT ...]")
    assert "--quality-margin QUALITY_MARGIN" in out and "chdb:PATH" in out
