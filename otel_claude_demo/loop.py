"""`otel-claude demo`: the whole loop on the simulator — instrument, export, tune, enforce, measure again.

    otel-claude demo [--scenario FILE] [--calls 1200] [--rounds 2] [--out demo-output]
    otel-claude demo --live            # small, budget-capped run against the real API (needs ANTHROPIC_API_KEY)

The baseline runs the service's workload as it is (everything on one model, generous max_tokens, no caching) with
otel_claude exporting spans to an OTLP JSON file. Each round tunes a policy on the latest run (carrying the quality
evidence of earlier rounds in a state file, as a service re-tuning every window would) and reruns the same workload
with that policy enforced. Round 1's policy caches prompts, fits max_tokens and sends a share of each task's calls
to a cheaper model in the background (paired evaluation); the verdicts on those pairs are what lets a later round
move a task to the cheaper model. Runs are in scenario time, fast-forwarded: 1,200 calls of the default support
desk are about 20 hours of its traffic, and the spans carry those times. Every round's policy and report are kept.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import otel_claude
from claude_sim import CallRecord, Scenario, SimServer, Summary, eval_set_grader, load_scenario, modelled_latency
from claude_sim.workload import run_workload
from otel_claude.policy import load_policy_text

_LIVE_CALLS = 40  # with --live: about $0.10 on Sonnet-class prices for the default scenario's sizes

# The demo's tuning settings, stated in its output with the reason for each (the tuner's defaults in brackets).
QUALITY_MARGIN = 0.05  # [0.02]
EVALUATE_SHARE = 0.5  # [0.2]
EVALUATION_BUDGET = 0.5  # [0.05]
SETTINGS = (
    f"--quality-margin {QUALITY_MARGIN} (default 0.02): a cheaper model may lose up to {QUALITY_MARGIN:g} of "
    "quality; proving a 0.02 margin on this traffic takes thousands of paired verdicts, days of the service's calls",
    f"--evaluate-share {EVALUATE_SHARE} and --evaluation-budget {EVALUATION_BUDGET} (defaults 0.2 and 0.05): up to "
    "half of an unproven task's calls are also sent to the cheaper model, so one round gathers what a service "
    "gathers in days; the table shows what that evaluation cost",
    "paired answers are graded against the scenario's labels by a grader registered per task "
    "(claude_sim.eval_set_grader, as a service with a labelled eval set would write one); no LLM judge",
    "latencies in the before/after table come from the simulator's latency model for each call's shape: the run is "
    "accelerated 100 times and its own timings mostly measure this machine's load",
)
# Worse after than before by more than this is flagged: latency (relative), quality (absolute).
LATENCY_REGRESSION = 0.10
QUALITY_REGRESSION = 0.01


def _step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


@dataclass(frozen=True)
class Measures:
    """What the before/after table compares, for one task or all of them."""

    calls: int
    cost_per_call: float
    evaluation_per_call: float
    quality: float | None
    ttft_p50: float | None
    ttft_p95: float | None
    duration_p50: float | None
    duration_p95: float | None
    cache_hit: float  # cache reads / all input tokens
    history_hit: float | None  # follow-up turns whose cache read reached earlier turns; None without follow-ups
    models: dict[str, int]


def _history_hit(records: list[CallRecord]) -> float | None:
    """Share of follow-up turns (turn >= 2) whose cache read goes past the shared prompt (a first turn's largest
    read), i.e. reached the conversation's earlier turns."""
    done = [r for r in records if r.error is None]
    follow = [r for r in done if r.turn >= 2]
    if not follow:
        return None
    prefix = {}
    for r in done:
        if r.turn == 1:
            prefix[r.task] = max(prefix.get(r.task, 0), r.cache_read_tokens)
    return sum(r.cache_read_tokens > prefix.get(r.task, 0) for r in follow) / len(follow)


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest rank, as the workload summary computes its percentiles."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def measures(summary: Summary, task: str | None = None) -> Measures:
    stats = summary.overall if task is None else summary.per_task[task]
    records = [r for r in summary.records if task is None or r.task == task]
    done = [r for r in records if r.error is None]
    total_input = sum(r.input_tokens for r in done)
    # The simulator's latency model for each call's shape (see SETTINGS): the accelerated run's own timings mostly
    # measure this machine's load.
    timed = [t for r in done
             if (t := modelled_latency(r.model, r.input_tokens, r.cache_read_tokens, r.output_tokens)) is not None]
    ttfts, durations = [t[0] for t in timed], [t[1] for t in timed]
    return Measures(
        calls=stats.calls, cost_per_call=stats.cost_per_call,
        evaluation_per_call=stats.evaluation_cost_usd / stats.calls if stats.calls else 0.0,
        quality=stats.quality, ttft_p50=_percentile(ttfts, 50), ttft_p95=_percentile(ttfts, 95),
        duration_p50=_percentile(durations, 50), duration_p95=_percentile(durations, 95),
        cache_hit=sum(r.cache_read_tokens for r in done) / total_input if total_input else 0.0,
        history_hit=_history_hit(records), models=stats.models,
    )


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _latency(before: float | None, after: float | None) -> str:
    flag = before is not None and after is not None and after > before * (1 + LATENCY_REGRESSION)
    return f"{_s(before)}->{_s(after)}{'!' if flag else ''}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _row(name: str, before: Measures, after: Measures) -> list[str]:
    change = (after.cost_per_call - before.cost_per_call) / before.cost_per_call if before.cost_per_call else 0.0
    q_flag = before.quality is not None and after.quality is not None and \
        after.quality < before.quality - QUALITY_REGRESSION
    quality = ("-" if before.quality is None else f"{before.quality:.3f}") + "->" + \
        ("-" if after.quality is None else f"{after.quality:.3f}") + ("!" if q_flag else "")
    return [
        name, f"{before.cost_per_call:.5f}->{after.cost_per_call:.5f}", f"{change:+.0%}" + ("!" if change > 0 else ""),
        f"{after.evaluation_per_call:.5f}", quality,
        _latency(before.ttft_p50, after.ttft_p50), _latency(before.ttft_p95, after.ttft_p95),
        _latency(before.duration_p50, after.duration_p50), _latency(before.duration_p95, after.duration_p95),
        f"{_rate(before.cache_hit)}->{_rate(after.cache_hit)}",
        f"{_rate(before.history_hit)}->{_rate(after.history_hit)}" if after.history_hit is not None else "-",
        ", ".join(f"{m}:{n}" for m, n in sorted(after.models.items())),
    ]


_HEADERS = ["task", "$/call before->after", "change", "eval $/call", "quality", "TTFT p50 s", "TTFT p95 s",
            "duration p50 s", "duration p95 s", "cache hit", "history hit", "models after"]


def comparison_table(before: Summary, after: Summary) -> str:
    """Before/after per task and overall; '!' marks what got worse (cost up, quality or latency regressed)."""
    rows = [_row(name, measures(before, name), measures(after, name))
            for name in sorted(set(before.per_task) & set(after.per_task))]
    rows.append(_row("ALL", measures(before), measures(after)))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(_HEADERS)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(_HEADERS, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines += [
        "eval $/call: what paired evaluation (background calls to a candidate model) cost per call, apart from $/call;",
        "TTFT, duration: the simulator's latency model for each call (model, uncached and cached input, output "
        "length) at median jitter, in real-time seconds;",
        "cache hit: cache reads / all input tokens; history hit: follow-up turns whose cache read reached earlier "
        "turns;",
        f"'!': worse than before (cost up, quality down {QUALITY_REGRESSION} or more, latency up "
        f"{LATENCY_REGRESSION:.0%} or more).",
    ]
    return "\n".join(lines)


@contextmanager
def _simulator(scenario: object, seed: int, latency_scale: float, live: bool) -> Iterator[str | None]:
    if live:
        yield None  # the SDK's default base URL: the real API
        return
    with SimServer(scenario=scenario, seed=seed, latency_scale=latency_scale, record=False) as sim:
        yield sim.base_url


@contextmanager
def _graders(scenario: Scenario, enabled: bool) -> Iterator[None]:
    """The scenario's eval-set grader registered for each of its tasks while the demo runs."""
    tasks = list(scenario.tasks) if enabled else []
    for task in tasks:
        otel_claude.register_grader(task, eval_set_grader(scenario, task), name="eval_set")
    try:
        yield
    finally:
        for task in tasks:
            otel_claude.unregister_grader(task)


def _tune(inputs: list[Path], policy: Path, reports: list[Path], candidates: list[str], state: Path) -> int:
    from tuner.cli import main as tune_main

    argv = [str(p) for p in inputs] + ["-o", str(policy), "--no-progress", "--state", str(state),
                                       "--quality-margin", str(QUALITY_MARGIN), "--evaluate-share",
                                       str(EVALUATE_SHARE), "--evaluation-budget", str(EVALUATION_BUDGET)]
    if candidates:
        argv += ["--candidates", ",".join(candidates)]
    for report in reports:
        argv += ["--report", str(report)]
    return tune_main(argv)


def _moves(policies: list[Path]) -> list[str]:
    """Each task a round's policy moved to another model, with the proof its evidence records (first time only)."""
    seen: set[str] = set()
    lines = []
    for number, path in enumerate(policies, 1):
        for rule in load_policy_text(path.read_text(encoding="utf-8"), str(path)).rules:
            if rule.model is None or rule.task is None or rule.task in seen or rule.when is not None:
                continue
            seen.add(rule.task)
            routing = rule.evidence.get("routing", {})
            reason = routing.get("reason", "") if isinstance(routing, dict) else ""
            lines.append(f"  {rule.task} -> {rule.model} from round {number}: {reason}")
    return lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otel-claude demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="default", help="scenario YAML (default: the built-in support desk)")
    parser.add_argument("--calls", type=int, default=1200, help="calls per workload run (1200)")
    parser.add_argument("--workers", type=int, default=16, help="calls in flight (16)")
    parser.add_argument("--rounds", type=int, default=2, help="tune-and-rerun rounds after the baseline (2)")
    parser.add_argument("--latency-scale", type=float, default=0.01,
                        help="simulated latency time scale (0.01: the modelled latencies run 100 times faster)")
    parser.add_argument("--seed", type=int, default=7, help="simulator and workload seed (7)")
    parser.add_argument("--out", default="demo-output", help="directory for spans, policies and reports (demo-output)")
    parser.add_argument("--live", action="store_true", help="run a small workload against the real API instead")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
    state = out / "tuner-state.json"
    # The exporter appends and the state carries evidence: an earlier demo's files would be counted again.
    for stale in [*out.glob("spans-*.jsonl"), state]:
        stale.unlink(missing_ok=True)
    scenario = load_scenario(args.scenario)
    started = time.perf_counter()
    written: list[Path] = []
    policies: list[Path] = []
    print("Demo settings (the tuner's defaults differ; each is passed to `otel-claude tune` explicitly):")
    for line in SETTINGS:
        print(f"  - {line}")
    with _simulator(scenario, args.seed, args.latency_scale, args.live) as base_url, \
            _graders(scenario, base_url is not None):
        where = "the real API" if base_url is None else f"the simulator at {base_url}"
        _step(f"baseline: {args.calls} calls of scenario '{scenario.name}' against {where}")
        spans = [out / "spans-baseline.jsonl"]
        # graders=False: the driver's own grader would replace the eval-set graders registered above.
        common = dict(calls=args.calls, workers=args.workers, seed=args.seed, progress=True,
                      graders=base_url is None)
        # Models the service could use: the ones the scenario knows, so the tuner can evaluate them.
        candidates = sorted({model for task in scenario.tasks.values() for model in task.models})
        baseline = run_workload(base_url, scenario, out=str(spans[0]), **common)
        print(baseline.format())
        written.append(spans[0])
        latest = baseline
        for number in range(1, args.rounds + 1):
            policy = out / f"policy-round{number}.yaml"
            reports = [out / f"report-round{number}.html", out / f"report-round{number}.md"]
            # Each round tunes on the latest run only, as a service tunes on its latest data window (runs replay the
            # same seeded traffic: pooling them would make every prompt look reused across runs); the state file
            # carries the quality evidence across rounds.
            _step(f"round {number}: tune on {spans[-1].name} ({spans[-1].stat().st_size // 1024} KiB)")
            if _tune([spans[-1]], policy, reports, candidates, state) != 0:
                print("otel-claude demo: tuning failed", file=sys.stderr)
                return 1
            written += [policy, *reports]
            policies.append(policy)
            run_spans = out / f"spans-round{number}.jsonl"
            _step(f"round {number}: rerun the workload with {policy.name} enforced")
            latest = run_workload(base_url, scenario, out=str(run_spans), policy=str(policy), **common)
            print(latest.format())
            spans.append(run_spans)
            written.append(run_spans)
    _step(f"before (baseline) vs after (round {args.rounds}, {policies[-1].name} enforced)")
    print(comparison_table(baseline, latest))
    moves = _moves(policies)
    print("\nTasks moved to a cheaper model, with the proof:" if moves else
          "\nNo task moved to a cheaper model: each round's report says what evidence is still missing.")
    for line in moves:
        print(line)
    print(f"\nfinished in {time.perf_counter() - started:.0f} s. Files written:")
    for path in written:
        print(f"  {path}")
    print(
        "\nView the traces in Jaeger: start the stack (`docker compose -f deploy/compose.yaml up -d`, see\n"
        "docs/observability.md), rerun with OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 otel-claude demo,\n"
        "then open http://localhost:16686 and pick the service claude-sim-workload.\n"
        f"Round 1's report recommends the first changes: {out / 'report-round1.html'}; the last round's policy is\n"
        f"{policies[-1]} (apply it with otel_claude.instrument(policy=...) or OTEL_CLAUDE_POLICY)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
