"""`otel-claude sim`: run the simulator in the foreground until interrupted.

    otel-claude sim --port 8080 --scenario default --latency-scale 0.1
    ANTHROPIC_BASE_URL=http://127.0.0.1:8080 python my_service.py

Scenario time: by default the clock runs at wall speed and jumps ahead to a driven call's planned time
(`x-sim-time`), so one `otel-claude workload --base-url ... --workers 1` run per simulator start runs
fast-forward against it (the clock never goes back, so a second run would be served late). With
`--speed S --real-time` on both, the driver waits for each call and both clocks run S times faster than the wall.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

import yaml

from claude_sim._ratelimit import RateLimits
from otel_claude.cli_args import CommandParser, whole_number

USAGE = "%(prog)s [options]"
DESCRIPTION = "A local Anthropic-compatible API simulator, in the foreground until interrupted."


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `otel-claude sim` (importing this module does not load the server or aiohttp)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on; 0 picks a free one")
    parser.add_argument("--scenario", help="scenario YAML path or a shipped name such as 'default' "
                        "(default: none, generic answers)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every simulated answer")
    parser.add_argument("--latency-scale", type=_scale, default=1.0, help="1 = published speeds, 0 = no latency")
    parser.add_argument("--faults", metavar="FILE", help="YAML file with a list of faults (see claude_sim.Fault)")
    parser.add_argument("--requests-per-minute", type=whole_number(1), default=RateLimits.requests_per_minute,
                        help="the rate-limit headers' request limit")
    parser.add_argument("--input-tokens-per-minute", type=whole_number(1), default=RateLimits.input_tokens_per_minute,
                        help="the rate-limit headers' input-token limit")
    parser.add_argument("--output-tokens-per-minute", type=whole_number(1),
                        default=RateLimits.output_tokens_per_minute, help="the rate-limit headers' output-token limit")
    parser.add_argument("--enforce-rate-limits", action="store_true", help="answer 429 when a bucket is empty")
    parser.add_argument("--speed", type=_positive, default=1.0,
                        help="scenario seconds per wall second (give a workload driver the same --speed)")
    parser.add_argument("--real-time", action="store_true",
                        help="never jump ahead to a call's x-sim-time: only the wall clock moves scenario time")


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="otel-claude sim", usage=USAGE, description=DESCRIPTION)
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    from claude_sim._clock import ScenarioClock
    from claude_sim._faults import parse_faults
    from claude_sim._scenario_file import ScenarioError, load_scenario
    from claude_sim._server import SimServer

    try:
        scenario = load_scenario(args.scenario) if args.scenario else None
        faults = []
        if args.faults:
            items = yaml.safe_load(Path(args.faults).read_text(encoding="utf-8")) or []
            if not isinstance(items, list):
                raise ValueError(f"{args.faults}: expected a YAML list of faults")
            faults = parse_faults(items, args.faults)
    except (ScenarioError, ValueError, OSError, yaml.YAMLError) as err:
        print(f"otel-claude sim: {err}", file=sys.stderr)
        return 2
    limits = RateLimits(args.requests_per_minute, args.input_tokens_per_minute, args.output_tokens_per_minute,
                        args.enforce_rate_limits)
    server = SimServer(scenario=scenario, seed=args.seed, latency_scale=args.latency_scale, faults=faults,
                       host=args.host, port=args.port, rate_limits=limits, record=False,
                       clock=ScenarioClock(args.speed, fast_forward=not args.real_time))
    with server:
        name = scenario.name if scenario else "none (generic answers)"
        print(f"claude-sim listening on {server.base_url} (scenario: {name}, latency scale {args.latency_scale})",
              flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("claude-sim: stopping", file=sys.stderr)
    return 0
