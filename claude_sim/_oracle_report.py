"""`python -m claude_sim.oracle SCENARIO`: a scenario's best policy and what it is worth, per task.

    python -m claude_sim.oracle chat --calls 1200 --samples 1500

Prints, per task, the baseline's expected cost and quality, the best policy's choice (model, max_tokens, cache
TTLs) with its cost, quality, truncation and cache hit rate, and the cost of the other shared-prefix TTLs with the
rest of that choice kept, so a scenario's header can say what the right policy is and why.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from claude_sim._scenario_file import load_scenario
from claude_sim.oracle import CACHE_OPTIONS, SizeRouted, best_policy, describe_choice, evaluate, evaluate_task


def describe(name: str, *, calls: int, samples: int, margin: float, target: float) -> str:
    scenario = load_scenario(name)
    options = dict(calls=calls, samples=samples)
    base = evaluate(scenario, {}, **options)
    best = best_policy(scenario, margin=margin, truncation_target=target, **options)
    score = evaluate(scenario, best, **options)
    lines = [f"scenario {scenario.name}: runs of {calls} calls, margin {margin}, truncation target {target:.0%}"]
    for task, policy in best.items():
        before, after = base.per_task[task], score.per_task[task]
        lines.append(
            f"- {task}: {describe_choice(policy)}: ${before.cost_per_call:.5f} -> "
            f"${after.cost_per_call:.5f} per call, quality {before.quality:.3f} -> {after.quality:.3f}, "
            f"truncation {after.truncation_rate:.1%}, cache hit {after.cache_hit_rate:.0%}")
        if isinstance(policy, SizeRouted):
            continue
        others = []
        for ttl in CACHE_OPTIONS:
            if ttl != policy.cache_ttl and not (ttl == "5m" and policy.conversation_ttl == "1h"):
                other = evaluate_task(scenario, task, replace(policy, cache_ttl=ttl), **options)
                others.append(f"cache {ttl or 'none'} ${other.cost_per_call:.5f} (hit {other.cache_hit_rate:.0%})")
        lines.append("    instead: " + ", ".join(others))
    saving = 1 - score.cost_per_call / base.cost_per_call
    lines.append(f"all tasks: ${base.cost_per_call:.5f} -> ${score.cost_per_call:.5f} per call ({saving:.0%} less), "
                 f"quality {base.quality:.3f} -> {score.quality:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m claude_sim.oracle", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", help="scenario YAML path or a shipped name")
    parser.add_argument("--calls", type=int, default=1200, help="calls per run (cache behaviour depends on it)")
    parser.add_argument("--samples", type=int, default=1500, help="replayed calls per task and choice")
    parser.add_argument("--margin", type=float, default=0.02)
    parser.add_argument("--target", type=float, default=0.01, help="truncation target")
    args = parser.parse_args(argv)
    print(describe(args.scenario, calls=args.calls, samples=args.samples, margin=args.margin, target=args.target))
    return 0
