"""`otel-claude demo`: the whole loop on the simulator — instrument, export, tune, enforce, measure again.

    otel-claude demo [--scenario FILE] [--calls 1200] [--rounds 2] [--out demo-output]
    otel-claude demo --live            # small, budget-capped run against the real API (needs ANTHROPIC_API_KEY)

Round 1 runs the service's workload as it is (everything on one model, generous max_tokens, no caching) with
otel_claude exporting spans to an OTLP JSON file, tunes a policy from those spans, and reruns the same workload
with the policy enforced. Runs are in scenario time, fast-forwarded: 1,200 calls of the default support desk are
about 20 hours of its traffic (arrival gaps, sparse and late feedback), and the spans carry those times. Each
further round tunes on the latest run: exploration traffic from the previous policy is the evidence that lets the
tuner move a task to a cheaper model.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from claude_sim import SimServer, Summary, TaskStats, load_scenario
from claude_sim.workload import run_workload

_LIVE_CALLS = 40  # with --live: about $0.10 on Sonnet-class prices for the default scenario's sizes


def _step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def _pct(before: float, after: float) -> str:
    return f"{(after - before) / before * 100:+.0f}%" if before else "-"


def _row(name: str, before: TaskStats, after: TaskStats) -> str:
    def quality(stats: TaskStats) -> str:
        return "-" if stats.quality is None else f"{stats.quality:.3f}"

    def pair(a: str, b: str, width: int = 7) -> str:
        return f"{a:>{width}}/{b:<6}"

    change = _pct(before.cost_per_call, after.cost_per_call)
    return (
        f"{name:<10}{before.cost_per_call:>10.5f}{after.cost_per_call:>10.5f}{change:>7}"
        + pair(_ms(before.ttft_p50_s), _ms(after.ttft_p50_s))
        + pair(_ms(before.ttft_p95_s), _ms(after.ttft_p95_s))
        + pair(_ms(before.duration_p50_s), _ms(after.duration_p50_s))
        + pair(_ms(before.duration_p95_s), _ms(after.duration_p95_s))
        + pair(f"{before.truncation_rate:.3f}", f"{after.truncation_rate:.3f}", 6)
        + pair(f"{before.cache_hit_rate:.2f}", f"{after.cache_hit_rate:.2f}", 5)
        + pair(quality(before), quality(after), 6)
    )


def comparison_table(before: Summary, after: Summary) -> str:
    header = (
        f"{'task':<10}{'$/call':>10}{'after':>10}{'change':>7}{'ttft p50 ms':>14}{'ttft p95 ms':>14}"
        f"{'dur p50 ms':>14}{'dur p95 ms':>14}{'truncation':>13}{'cache hit':>11}{'quality':>13}"
    )
    lines = [header, "-" * len(header)]
    for name in sorted(set(before.per_task) | set(after.per_task)):
        if name in before.per_task and name in after.per_task:
            lines.append(_row(name, before.per_task[name], after.per_task[name]))
    lines.append(_row("ALL", before.overall, after.overall))
    lines.append("columns with two values are before/after; cache hit = cache reads / (reads + writes) in tokens")
    return "\n".join(lines)


@contextmanager
def _simulator(scenario: object, seed: int, latency_scale: float, live: bool) -> Iterator[str | None]:
    if live:
        yield None  # the SDK's default base URL: the real API
        return
    with SimServer(scenario=scenario, seed=seed, latency_scale=latency_scale, record=False) as sim:
        yield sim.base_url


def _tune(inputs: list[Path], policy: Path, reports: list[Path], candidates: list[str]) -> int:
    from tuner.cli import main as tune_main

    argv = [str(p) for p in inputs] + ["-o", str(policy), "--no-progress"]
    if candidates:
        argv += ["--candidates", ",".join(candidates)]
    for report in reports:
        argv += ["--report", str(report)]
    return tune_main(argv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otel-claude demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="default", help="scenario YAML (default: the built-in support desk)")
    parser.add_argument("--calls", type=int, default=1200, help="calls per workload run")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="tune-and-rerun rounds after the baseline")
    parser.add_argument("--latency-scale", type=float, default=0.01, help="simulated latency time scale")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="demo-output", help="directory for spans, policies and reports")
    parser.add_argument("--live", action="store_true", help="run a small workload against the real API instead")
    args = parser.parse_args(argv)
    if args.live:
        if not os.environ.get("ANTHROPIC_API_KEY"):
            print("otel-claude demo --live needs ANTHROPIC_API_KEY", file=sys.stderr)
            return 2
        args.calls, args.rounds, args.workers = min(args.calls, _LIVE_CALLS), 1, min(args.workers, 4)
        print(f"live mode: {args.calls} calls per run against the real API (budget cap)")
    if args.calls < 50 or args.rounds < 1:
        print("otel-claude demo: --calls must be >= 50 and --rounds >= 1", file=sys.stderr)
        return 2

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scenario = load_scenario(args.scenario)
    started = time.perf_counter()
    written: list[Path] = []
    with _simulator(scenario, args.seed, args.latency_scale, args.live) as base_url:
        where = "the real API" if base_url is None else f"the simulator at {base_url}"
        _step(f"baseline: {args.calls} calls of scenario '{scenario.name}' against {where}")
        spans = [out / "spans-baseline.jsonl"]
        for stale in out.glob("spans-*.jsonl"):
            stale.unlink()  # the exporter appends: an earlier demo's spans would be tuned on again
        common = dict(calls=args.calls, workers=args.workers, seed=args.seed, progress=True)
        # Models the service could use: the ones the scenario knows, so the tuner can explore them.
        candidates = sorted({model for task in scenario.tasks.values() for model in task.models})
        baseline = run_workload(base_url, scenario, out=str(spans[0]), **common)
        print(baseline.format())
        written.append(spans[0])
        latest = baseline
        for round_number in range(1, args.rounds + 1):
            policy = out / ("policy.yaml" if round_number == args.rounds else f"policy-round{round_number}.yaml")
            reports = [out / "report.html", out / "report.md"] if round_number == args.rounds else []
            # Each round tunes on the latest run only, as a service would tune on its latest data window: runs
            # replay the same seeded traffic, so pooling them would make every prompt look reused across runs.
            latest_spans = spans[-1]
            _step(f"round {round_number}: tune on {latest_spans.name} ({latest_spans.stat().st_size // 1024} KiB)")
            if _tune([latest_spans], policy, reports, candidates) != 0:
                print("otel-claude demo: tuning failed", file=sys.stderr)
                return 1
            written += [policy, *reports]
            run_spans = out / f"spans-round{round_number}.jsonl"
            _step(f"round {round_number}: rerun the workload with {policy.name} enforced")
            latest = run_workload(base_url, scenario, out=str(run_spans), policy=str(policy), **common)
            print(latest.format())
            spans.append(run_spans)
            written.append(run_spans)
    _step("before (baseline) vs after (last round, policy enforced)")
    print(comparison_table(baseline, latest))
    print(f"\nfinished in {time.perf_counter() - started:.0f} s. Files written:")
    for path in written:
        print(f"  {path}")
    print(
        "\nView the traces in Jaeger: start the stack (`docker compose -f deploy/compose.yaml up -d`, see\n"
        "docs/observability.md), rerun with OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 otel-claude demo,\n"
        "then open http://localhost:16686 and pick the service claude-sim-workload.\n"
        f"Read {out / 'report.html'} before applying {out / 'policy.yaml'} with "
        "otel_claude.instrument(policy=...) or OTEL_CLAUDE_POLICY."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
