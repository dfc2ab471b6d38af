"""Decision quality of the tuner on simulator scenarios, against each scenario's ground truth.

    python bench/bench_decisions.py [--scenario all|default|chat|agent|internal|FILE] [--calls 2000 2000 2000]
                                    [--feedback scenario|off|all] [--judge MODEL]

The closed loop, all through the real instrumented SDK over loopback HTTP, in scenario time (arrivals, sessions,
delayed feedback): a baseline run (no policy) -> tune -> a run under that policy (which evaluates cheaper candidates
on paired shadow calls, graded in-process, a judge for prose) -> tune on that run's spans, with the evidence of
earlier windows carried in a `--state` file, as a service tunes each new window -> ... The final policy is scored
with `claude_sim.oracle`: the expected cost, quality and truncation of the policy, of the baseline and of the best
policy for the scenario (same margin and truncation target), in runs of `--oracle-calls` calls (arrival rates, not
run length, set cache reuse). `--feedback off` takes every user score away (the scenario as if nobody scored
anything), `all` scores every call. Printed per scenario: the share of the achievable saving the tuner's policy gets,
its quality change and truncation per task, the evaluation spend per task and round as a share of the task's own,
and the same measured on a validation run; then one line per scenario. Targets (issue #14, feedback off, rounds of
2,000 calls, margin 0.02): >= 90% of the achievable saving after 3 rounds, every task's quality change >= -margin,
truncation no worse than the oracle's own + 0.5 points, evaluation spend <= 5% of each task's spend.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dataclasses  # noqa: E402

from claude_sim import SHIPPED, Scenario, SimServer, load_scenario  # noqa: E402
from claude_sim.oracle import PolicyScore, best_policy, choices_from_policy, describe_choice, evaluate  # noqa: E402
from claude_sim.workload import run_workload  # noqa: E402
from tuner.cli import main as tune  # noqa: E402


def _row(name: str, score: PolicyScore, base: PolicyScore) -> str:
    saving = 1 - score.cost_per_call / base.cost_per_call
    return (
        f"{name:<10} cost/call ${score.cost_per_call:.6f} ({saving:+.1%} vs baseline)  "
        f"quality {score.quality:.4f} ({score.quality - base.quality:+.4f})"
    )


def with_feedback(scenario: Scenario, mode: str) -> Scenario:
    """The scenario with its users' scoring as `mode` says: as written, nobody scores, or every call is scored."""
    if mode == "scenario":
        return scenario
    share = 0.0 if mode == "off" else 1.0
    tasks = {name: dataclasses.replace(task, feedback=dataclasses.replace(task.feedback, share=share))
             for name, task in scenario.tasks.items()}
    return dataclasses.replace(scenario, tasks=tasks, _cases={})


def bench(name: str, args: argparse.Namespace) -> tuple[float, float, float, float, bool]:
    """One scenario's closed loop; returns (share of the achievable saving, worst quality change, worst
    truncation above the oracle's, worst evaluation spend share, targets met)."""
    scenario = with_feedback(load_scenario(name), args.feedback)
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="bench-decisions-"))) / scenario.name
    work.mkdir(parents=True, exist_ok=True)
    state = work / "state.json"
    state.unlink(missing_ok=True)
    options = ["--quality-margin", str(args.margin), "--truncation-target", str(args.target)]
    options += ["--explore-share", str(args.explore_share), "--candidates", args.candidates, "--no-progress"]
    options += ["--evaluation-budget", str(args.budget), "--state", str(state)]
    options += ["--judge", args.judge] if args.judge else []

    policy: Path | None = None
    measured = {}
    worst_spend = 0.0
    with SimServer(scenario=scenario, seed=args.seed, latency_scale=0.0, record=False) as sim:
        for round_number, calls in enumerate(args.calls):
            out = work / f"spans-{round_number}.jsonl"
            out.unlink(missing_ok=True)
            started = time.perf_counter()
            summary = run_workload(
                sim.base_url, scenario, calls=calls, out=str(out), seed=args.seed + round_number, policy=policy
            )
            if round_number == 0:
                measured["baseline"] = summary
            spend = {task: stats.evaluation_cost_usd / stats.cost_usd
                     for task, stats in summary.per_task.items() if stats.cost_usd > 0}
            worst_spend = max([worst_spend, *spend.values()])
            print(
                f"{scenario.name} round {round_number}: {calls} calls in {time.perf_counter() - started:.0f}s "
                f"(policy: {policy.name if policy else 'none'}); evaluation spend per task: "
                + (", ".join(f"{task} {share:.1%}" for task, share in sorted(spend.items()) if share) or "none"),
                flush=True,
            )
            policy = work / f"policy-{round_number}.yaml"
            # Each window on its own, its evidence carried in the state file: as a service tunes its latest data.
            if tune([str(out), "-o", str(policy), "--report", str(work / f"report-{round_number}.md"), *options]):
                raise SystemExit(f"tuning failed on {scenario.name}")
        final = policy
        assert final is not None
        measured["tuned"] = run_workload(
            sim.base_url, scenario, calls=args.validate, out=str(work / "validate.jsonl"), seed=10_000, policy=final
        )

    oracle = dict(calls=args.oracle_calls, samples=args.samples)
    base = evaluate(scenario, {}, **oracle)
    best = evaluate(scenario, best_policy(scenario, margin=args.margin, truncation_target=args.target, **oracle),
                    **oracle)
    ours = evaluate(scenario, choices_from_policy(scenario, final), **oracle)
    achievable = base.cost_per_call - best.cost_per_call
    share = (base.cost_per_call - ours.cost_per_call) / achievable if achievable > 0 else float("nan")
    print(f"\nscenario {scenario.name}; final policy {final}; reports and spans in {work}")
    print("expected (oracle, per call over the scenario's traffic mix):")
    for label, score in (("baseline", base), ("best", best), ("tuned", ours)):
        print("  " + _row(label, score, base))
    print(f"  share of the achievable saving: {share:.1%} (target >= 90%)")
    print("per task: choice (tuned | best), quality change vs baseline, truncation (the oracle's best's)")
    worst_quality = 0.0
    worst_truncation = 0.0
    for task in scenario.tasks:
        delta = ours.per_task[task].quality - base.per_task[task].quality
        truncation = ours.per_task[task].truncation_rate
        worst_quality = min(worst_quality, delta)
        worst_truncation = max(worst_truncation, truncation - best.per_task[task].truncation_rate)
        print(f"  {task:<14} {describe_choice(ours.choices[task])} | {describe_choice(best.choices[task])}  "
              f"quality {delta:+.4f}  truncation {truncation:.2%} ({best.per_task[task].truncation_rate:.2%})")
    b, t = measured["baseline"].overall, measured["tuned"].overall
    print("measured (baseline round vs validation run under the final policy):")
    print(
        f"  cost/call ${b.cost_per_call:.6f} -> ${t.cost_per_call:.6f} ({t.cost_per_call / b.cost_per_call - 1:+.1%}); "
        f"quality {b.quality:.4f} -> {t.quality:.4f}; truncation {b.truncation_rate:.2%} -> {t.truncation_rate:.2%}; "
        f"cache hit rate {t.cache_hit_rate:.1%}"
    )
    ok = (share >= 0.9 and worst_quality >= -args.margin and worst_truncation <= 0.005
          and worst_spend <= args.budget + 1e-9)
    print(f"targets met: {ok} (worst task quality change {worst_quality:+.4f}, worst truncation above the "
          f"oracle's {worst_truncation:+.2%}, worst evaluation spend {worst_spend:.1%} of a task's)\n")
    return share, worst_quality, worst_truncation, worst_spend, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="all", help="'all' (every shipped scenario), a shipped name or a file")
    parser.add_argument("--calls", type=int, nargs="+", default=[2000, 2000, 2000], help="calls per round")
    parser.add_argument("--feedback", choices=("scenario", "off", "all"), default="off",
                        help="users' scores: as the scenario says, none (default), or on every call")
    parser.add_argument("--judge", default="claude-sonnet-4-6", help="the LLM judge for prose pairs ('' for none)")
    parser.add_argument("--budget", type=float, default=0.05, help="evaluation budget, share of a task's spend")
    parser.add_argument("--validate", type=int, default=3000, help="calls of the final validation run")
    parser.add_argument("--oracle-calls", type=int, default=3000, help="run length the oracle scores policies at")
    parser.add_argument("--samples", type=int, default=2000, help="oracle samples per task and choice")
    parser.add_argument("--margin", type=float, default=0.02)
    parser.add_argument("--target", type=float, default=0.01, help="truncation target")
    parser.add_argument("--explore-share", type=float, default=0.0)
    parser.add_argument("--candidates", default="claude-haiku-4-5,claude-opus-4-6")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    names = list(SHIPPED) if args.scenario == "all" else [args.scenario]
    results = {name: bench(name, args) for name in names}
    print(f"feedback {args.feedback}, rounds {args.calls}, margin {args.margin}, judge {args.judge or 'none'}")
    print("scenario      share of achievable saving  worst quality change  truncation vs oracle  evaluation spend  met")
    for name, (share, quality, truncation, spend, ok) in results.items():
        print(f"{name:<14}{share:>26.1%}{quality:>22.4f}{truncation:>+22.2%}{spend:>18.1%}  {ok}")
    return 0 if all(ok for *_, ok in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
