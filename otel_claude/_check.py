"""`otel-claude check POLICY...`: validate policy files or URLs as the instrumentor would load them, for CI.

Exit status 0 when every policy is valid, 1 when any is not (every problem of every file listed, one per line, on
stderr), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._policy_source import read_policy_url, redacted_url
from .cli_args import CommandParser
from .policy import Policy, PolicyError, load_policy_text

USAGE = "%(prog)s [options] POLICY [POLICY ...]"
DESCRIPTION = "Validate policy files (or http(s) URLs) the way otel_claude.instrument(policy=...) loads them."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("policies", nargs="+", metavar="POLICY", help="a policy file path or an http(s):// URL")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing for a valid policy")


def _load(source: str) -> Policy:
    if source.startswith(("http://", "https://")):
        return read_policy_url(source)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise PolicyError(f"{source}: cannot read ({getattr(err, 'strerror', None) or err})") from None
    return load_policy_text(text, source)


def _label(source: str) -> str:
    return redacted_url(source) if source.startswith(("http://", "https://")) else source


def run(args: argparse.Namespace) -> int:
    status = 0
    for source in args.policies:
        try:
            policy = _load(source)
        except PolicyError as err:
            status = 1
            for problem in err.problems:
                print(problem, file=sys.stderr)
            count = len(err.problems)
            print(f"{_label(source)}: invalid ({count} problem{'s' * (count != 1)})", file=sys.stderr)
            continue
        if not args.quiet:
            print(f"{_label(source)}: valid: policy {policy.version}, mode {policy.mode}, {len(policy.rules)} rules, "
                  f"{len(policy.limits)} limits")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="otel-claude check", usage=USAGE, description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))
