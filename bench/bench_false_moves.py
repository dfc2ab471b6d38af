"""False and missed moves of the routing decision under repeated tuning, over many seeds, without HTTP.

    python bench/bench_false_moves.py [--seeds 100] [--rounds 6] [--calls 2000] [--margin 0.02]

One task served by Sonnet; a cheaper candidate (Haiku) whose quality differs by `delta`. Each round: the task's
calls of one tuning window; the share the previous round's policy asked to evaluate is shadowed, and each shadowed
pair gives a verdict d = correct(candidate) - correct(incumbent) (an exact grader on short answers). Whether each
model is right on a request follows the scenarios' model of correlated errors: a latent difficulty per request
shared by both models (a Gaussian copula with correlation `rho`), so each model keeps its exact accuracy while hard
requests are hard for both. The real tuner decides each round on that round's spans with its state carried over
(`decide_task`, `TunerState`), exactly as `otel-claude tune --state` does, and the next round evaluates the share it
planned. No user feedback.

Printed per scenario: the share of seeds in which the task was routed by each round, and the evaluation spend.
Targets (issue #14): with the candidate worse by 1.5x the margin, routed in <= 5% of seeds over 6 rounds; with it
better, routed within 3 rounds in >= 80% of seeds.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from statistics import NormalDist

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tuner import synthetic as syn  # noqa: E402
from tuner._dataset import Dataset, build_dataset  # noqa: E402
from tuner._records import CallTable  # noqa: E402
from tuner._routing import RoutingOptions  # noqa: E402
from tuner._state import TunerState  # noqa: E402
from tuner._tune import TuneOptions, decide_task  # noqa: E402

SONNET, HAIKU = "claude-sonnet-4-6", "claude-haiku-4-5"
T0 = 1_800_000_000 * 10**9
_NORMAL = NormalDist()


def _correct(rng: np.random.Generator, n: int, p_incumbent: float, p_candidate: float, rho: float) -> tuple:
    """Correctness of both models on n requests sharing a latent difficulty (exact marginal accuracies)."""
    shared = rng.standard_normal(n)
    own = rng.standard_normal((2, n))
    latent = math.sqrt(rho) * shared + math.sqrt(1 - rho) * own
    return latent[0] < _NORMAL.inv_cdf(p_incumbent), latent[1] < _NORMAL.inv_cdf(p_candidate)


def _window(rng: np.random.Generator, round_number: int, calls: int, share: float, p_i: float, p_c: float,
            rho: float) -> Dataset:
    table = CallTable()
    start = T0 + round_number * 86_400 * 10**9
    shadowed = rng.random(calls) < share
    right_i, right_c = _correct(rng, calls, p_i, p_c, rho)
    for i in range(calls):
        t = start + i * 10**9
        rid = f"r{round_number}-{i}"
        for span in [syn.call(start_ns=t, model=SONNET, task="t", output_tokens=40, input_tokens=900,
                              max_tokens=512, response_id=rid)]:
            table.add_span(span.name, span.start_ns, span.end_ns, span.attributes)
        if shadowed[i]:
            d = float(right_c[i]) - float(right_i[i])
            for span in (
                syn.call(start_ns=t + 1, model=HAIKU, task="t", output_tokens=40, input_tokens=900, max_tokens=512,
                         response_id=f"{rid}-s", role="shadow"),
                syn.verdict(start_ns=t + 2, response_id=rid, incumbent=SONNET, candidate=HAIKU, value=d, task="t"),
            ):
                table.add_span(span.name, span.start_ns, span.end_ns, span.attributes)
    columns, unmatched = table.columns()
    return build_dataset(columns, table.spans, table.feedback, unmatched, table.verdicts)


def run_seed(seed: int, args: argparse.Namespace, delta: float) -> tuple[int | None, float]:
    """(the round in which the task was first routed, or None; evaluation spend as a share of the task's)."""
    rng = np.random.default_rng(seed)
    options = TuneOptions(routing=RoutingOptions(quality_margin=args.margin, alpha=args.alpha,
                                                 evaluation_budget=args.budget, candidates=(HAIKU,)))
    state = TunerState()
    share = 0.0
    spent = own = 0.0
    for round_number in range(args.rounds):
        dataset = _window(rng, round_number, args.calls, share, args.p, args.p + delta, args.rho)
        decision = decide_task(dataset, "t", options, state)
        spent += dataset.evaluation_cost.get("t", 0.0)
        own += sum(m.cost_total for m in dataset.for_task("t"))
        if decision.route.model == HAIKU:
            return round_number, spent / own if own else 0.0
        share = decision.route.evaluate_share or 0.0
    return None, spent / own if own else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=2000, help="calls of the task per round")
    parser.add_argument("--margin", type=float, default=0.02)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--budget", type=float, default=0.05, help="evaluation budget (share of the task's spend)")
    parser.add_argument("--p", type=float, default=0.9, help="the incumbent's accuracy")
    parser.add_argument("--rho", type=float, default=0.7, help="error correlation (Gaussian copula)")
    parser.add_argument("--better", type=float, default=None, help="how much better the candidate is (default: margin)")
    args = parser.parse_args()
    better = args.margin if args.better is None else args.better
    scenarios = (("worse by 1.5x the margin", -1.5 * args.margin), ("better", better))
    print(f"{args.seeds} seeds x {args.rounds} rounds of {args.calls} calls; incumbent accuracy {args.p}, "
          f"error correlation {args.rho}, margin {args.margin}, alpha {args.alpha}, budget {args.budget:.0%}")
    ok = True
    for name, delta in scenarios:
        started = time.perf_counter()
        results = [run_seed(seed, args, delta) for seed in range(args.seeds)]
        routed_by = [sum(1 for r, _ in results if r is not None and r <= k) / args.seeds for k in range(args.rounds)]
        spend = max(s for _, s in results)
        print(f"\ncandidate {name} (delta {delta:+.3f}), {time.perf_counter() - started:.0f} s:")
        print("  routed by round: " + ", ".join(f"{k + 1}: {share:.0%}" for k, share in enumerate(routed_by)))
        print(f"  evaluation spend, worst seed: {spend:.2%} of the task's spend (budget {args.budget:.0%})")
        if delta < 0:
            met = routed_by[-1] <= 0.05
            print(f"  false moves: {routed_by[-1]:.0%} of seeds (target <= 5%): {'met' if met else 'NOT met'}")
        else:
            met = routed_by[min(2, args.rounds - 1)] >= 0.8
            print(f"  routed within 3 rounds: {routed_by[min(2, args.rounds - 1)]:.0%} (target >= 80%): "
                  f"{'met' if met else 'NOT met'}")
        ok &= met
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
