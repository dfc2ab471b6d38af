"""`otel-claude tune INPUT... -o policy.yaml --report report.html`: spans in, policy and report out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from otel_claude.catalog import closest_model, resolve
from otel_claude.cli_args import CommandParser, whole_number
from otel_claude.cli_checks import unwritable
from otel_claude.policy import MAX_EVALUATE_SHARE, MAX_EXPLORE_SHARE, PolicyError, dump_policy
from tuner._issues import Issues, TraceInputError

if TYPE_CHECKING:
    from tuner._dataset import Dataset
    from tuner._limits import LimitDecision
    from tuner._limits_input import LimitRows

USAGE = "%(prog)s [options] INPUT [INPUT ...]"
DESCRIPTION = "Turn exported spans into a policy file and a report."
EPILOG = (
    "INPUT: OTLP JSON lines or Jaeger JSON files (.gz/.zst ok), globs, directories of rotated files; chdb:PATH for "
    "a ClickHouse otel_traces table in a chdb data directory; or a ClickHouse server, "
    "clickhouse://user@host:8123/db?table=otel_traces (https://... for TLS), password from CLICKHOUSE_PASSWORD or "
    "--clickhouse-password-file."
)


def _fraction(low: float, high: float, name: str) -> object:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not low < value <= high:
            raise argparse.ArgumentTypeError(f"{name} must be in ({low}, {high}], got {value}")
        return value

    return parse


def _bound(name: str) -> object:
    def parse(text: str) -> int:
        from tuner._window import parse_bound

        try:
            return parse_bound(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"{name}: {err}") from None

    return parse


_positive_int = whole_number(1)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _model(text: str) -> str:
    names = _models(text)
    if len(names) != 1:
        raise argparse.ArgumentTypeError(f"expected one model name, got {text!r}")
    return names[0]


def _models(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if resolve(n) is None]
    if unknown:
        guesses = {n: closest_model(n) for n in unknown}
        hints = [f"{n} (did you mean {g}?)" if g else n for n, g in guesses.items()]
        raise argparse.ArgumentTypeError(f"unknown model(s): {', '.join(hints)} (not in the model catalog)")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `otel-claude tune` (importing this module loads none of the tuner's extras)."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="spans to read (see below)")
    parser.add_argument("-o", "--output", default="policy.yaml", help="policy file to write")
    parser.add_argument(
        "--report", action="append", default=[], help="report to write: .md for Markdown, else HTML (repeatable)"
    )
    parser.add_argument("--truncation-target", type=_fraction(0, 0.5, "truncation target"), default=0.01,
                        help="share of calls a recommended max_tokens may cut short")
    parser.add_argument("--quality-margin", type=_fraction(0, 1, "quality margin"), default=0.02,
                        help="quality a cheaper model may lose against the current one and still be chosen")
    parser.add_argument("--alpha", type=_fraction(0, 0.5, "alpha"), default=0.05,
                        help="error rate of each routing claim, anytime-valid across windows")
    parser.add_argument("--min-samples", type=whole_number(2), default=30,
                        help="verdicts or scores a model needs on a task before it is judged")
    parser.add_argument("--max-ttft-p95", type=_seconds, default=None, metavar="SECONDS",
                        help="route only to models whose p95 time to first token is at most this")
    parser.add_argument("--max-duration-p95", type=_seconds, default=None, metavar="SECONDS",
                        help="route only to models whose p95 call duration is at most this")
    parser.add_argument("--evaluate-share", type=_fraction(-1e-9, MAX_EVALUATE_SHARE, "evaluate share"), default=0.2,
                        help="max share of a task's calls sent to a candidate as paired shadow calls (0 = off)")
    parser.add_argument("--evaluation-budget", type=_fraction(0, 1, "evaluation budget"), default=0.05,
                        help="evaluation spend per task at most this share of its own spend")
    parser.add_argument("--judge", type=_model, default=None, metavar="MODEL",
                        help="an LLM judge for paired answers no cheaper grader settles (opt-in: two calls a pair)")
    parser.add_argument(
        "--explore-share", type=_fraction(-1e-9, MAX_EXPLORE_SHARE, "explore share"), default=0.0,
        help="max share of a task's calls SERVED by an unproven candidate (0 = off; needs user feedback)",
    )
    parser.add_argument("--state", default=None, metavar="FILE",
                        help="JSON file carrying evidence and decisions across tuning windows (read, then updated)")
    parser.add_argument("--candidates", type=_models, default=(), metavar="MODEL,MODEL",
                        help="comma-separated models to consider besides those in the input")
    parser.add_argument("--since", type=_bound("--since"), default=None, metavar="TIME", help="read spans starting "
                        "at or after this time: ISO 8601 (2026-11-20T00:00Z) or back from now (24h, 7d)")
    parser.add_argument("--until", type=_bound("--until"), default=None, metavar="TIME",
                        help="read spans starting before this time")
    parser.add_argument("--clickhouse-table", default="otel_traces", help="table for ClickHouse inputs")
    parser.add_argument("--clickhouse-password-file", default=None, metavar="FILE",
                        help="file holding the ClickHouse password")
    parser.add_argument("--clickhouse-max-execution-time", type=_positive_int, default=600, metavar="SECONDS",
                        help="bound on each ClickHouse query")
    parser.add_argument("--clickhouse-max-memory", type=_positive_int, default=8 * 2**30, metavar="BYTES",
                        help="bound on each ClickHouse query's memory")
    parser.add_argument("--clickhouse-max-result-rows", type=_positive_int, default=1_000_000, metavar="ROWS",
                        help="bound on each ClickHouse query's result")
    parser.add_argument("--clickhouse-limit-calls", type=_positive_int, default=200_000, metavar="CALLS",
                        help="rate-limit decisions from ClickHouse read the most recent CALLS calls of the window "
                        "(limits are about recent behaviour, and what leaves the cluster stays bounded)")
    parser.add_argument("--limit-share", type=_fraction(0, 1, "limit share"), default=0.98,
                        help="share of the account's rate limits a recommended limit paces at")
    parser.add_argument("--no-limits", dest="limits", action="store_false",
                        help="skip the rate-limit decisions (their second pass over files, their ClickHouse query)")
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="show progress bars (default: when stderr is a terminal)")
    progress.add_argument("--no-progress", dest="progress", action="store_false", help="never show progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="otel-claude tune", usage=USAGE, description=DESCRIPTION, epilog=EPILOG)
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    # Outputs are checked before the analysis: finding out after it (or with the policy written and not its report)
    # wastes the run.
    for output in (args.output, *args.report):
        problem = unwritable(output)
        if problem is not None:
            print(f"otel-claude tune: cannot write {problem}", file=sys.stderr)
            return 2
    # Heavy imports (numpy, scikit-learn) only once the arguments are known to be good.
    from tuner._hints import evidence_hints
    from tuner._limits import policy_limits
    from tuner._report import SUMMARY_HEADERS, build_blocks, limit_blocks, render_html, render_markdown, summary_rows
    from tuner._routing import RoutingOptions
    from tuner._state import StateError, TunerState
    from tuner._tune import TuneOptions, build_policy, decide_all

    try:
        options = TuneOptions(
            truncation_target=args.truncation_target,
            routing=RoutingOptions(
                quality_margin=args.quality_margin,
                alpha=args.alpha,
                min_samples=args.min_samples,
                max_ttft_p95=args.max_ttft_p95,
                max_duration_p95=args.max_duration_p95,
                evaluate_share=max(args.evaluate_share, 0.0),
                evaluation_budget=args.evaluation_budget,
                explore_share=max(args.explore_share, 0.0),
                candidates=args.candidates,
                judge_model=args.judge,
            ),
        )
        state = TunerState.load(args.state) if args.state else TunerState()
    except (ValueError, StateError) as err:
        print(f"otel-claude tune: {err}", file=sys.stderr)
        return 2
    try:
        dataset, issues, limit_rows = _load(args)
    except TraceInputError as err:
        print(f"otel-claude tune: {err}", file=sys.stderr)
        return 2
    if not dataset.calls:
        print("otel-claude tune: no call spans (gen_ai.operation.name = chat) in the input", file=sys.stderr)
        return 2
    decisions = decide_all(dataset, options, state)
    limit_decisions = _limit_decisions(args, limit_rows)
    try:
        policy = build_policy(dataset, decisions, options, limits=policy_limits(limit_decisions))
        text = dump_policy(policy)
    except PolicyError as err:
        print(f"otel-claude tune: internal error, the policy does not validate: {err}", file=sys.stderr)
        return 1
    Path(args.output).write_text(text, encoding="utf-8")
    if args.state:
        state.windows += 1
        state.policy_version = policy.version
        state.save(args.state)
    blocks = build_blocks(policy, dataset, decisions, issues, options) + limit_blocks(limit_decisions)
    for report in args.report:
        rendered = render_markdown(blocks) if report.lower().endswith(".md") else render_html(blocks)
        Path(report).write_text(rendered, encoding="utf-8")
    _print_summary(SUMMARY_HEADERS, summary_rows(decisions, dataset.days))
    print(f"policy {policy.version}: {len(policy.rules)} rules -> {args.output}; {dataset.calls} calls read", end="")
    print(f", {issues.total} skipped" if issues.total else "")
    for example in issues.examples[:5]:
        print(f"  skipped {example}", file=sys.stderr)
    for d in limit_decisions:
        print(f"rate limits, {d.model}: {d.reason}")
    for hint in evidence_hints(dataset, policy, args.evaluate_share):
        print(f"otel-claude tune: {hint}", file=sys.stderr)
    return 0


def _limit_decisions(args: argparse.Namespace, rows: LimitRows | None) -> list[LimitDecision]:
    if rows is None:
        return []
    from tuner._limits import LimitOptions, decide_limits

    return decide_limits(rows, LimitOptions(share=args.limit_share))


def _load(args: argparse.Namespace) -> tuple[Dataset, Issues, LimitRows | None]:
    """The dataset, what was skipped, and the rate-limit rows (None with --no-limits): from ClickHouse the most
    recent --clickhouse-limit-calls calls of the window, from files a second pass over them."""
    from tuner._clickhouse_source import is_clickhouse_input
    from tuner._window import Window

    try:
        window = Window(args.since, args.until)
    except ValueError as err:
        raise TraceInputError(str(err)) from None
    databases = [i for i in args.inputs if is_clickhouse_input(i)]
    if databases:
        if len(databases) != len(args.inputs) or len(databases) > 1:
            raise TraceInputError("a chdb: or ClickHouse server input cannot be combined with other inputs")
        if args.limits and args.clickhouse_limit_calls > args.clickhouse_max_result_rows:
            raise TraceInputError(
                f"--clickhouse-limit-calls {args.clickhouse_limit_calls} is more than --clickhouse-max-result-rows "
                f"{args.clickhouse_max_result_rows}: the server would refuse the rate-limit query"
            )
        from tuner._clickhouse import load_clickhouse, load_limit_rows
        from tuner._clickhouse_source import Limits, open_runner

        limits = Limits(args.clickhouse_max_execution_time, args.clickhouse_max_memory, args.clickhouse_max_result_rows)
        runner, table = open_runner(databases[0], limits, args.clickhouse_password_file)
        table = table or args.clickhouse_table
        try:
            dataset = load_clickhouse(runner, table, window)
            rows = load_limit_rows(runner, table, window, args.clickhouse_limit_calls) if args.limits else None
            return dataset, Issues(), rows
        finally:
            runner.close()
    from tuner._ingest import load_dataset
    from tuner._limits_input import read_limit_rows

    dataset, issues = load_dataset(args.inputs, show_progress=args.progress, window=window)
    return dataset, issues, read_limit_rows(args.inputs, window) if args.limits else None


def _print_summary(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
