"""Routing on constructed evidence whose right answer is known: paired verdicts, feedback, missing evidence, the
budget, the margin left by earlier routes, and each model priced with the caching it would get."""

from __future__ import annotations

import numpy as np
import pytest
from tuner_helpers import model_stats

from tuner._costs import estimate_cost
from tuner._dataset import ModelStats, PrefixStats
from tuner._evidence import TaskEvidence
from tuner._routing import RoutingOptions, decide_route
from tuner._state import TaskMemory

SONNET, HAIKU, OPUS = "claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6"


def _costs(stats: list[ModelStats], prefixes: list[PrefixStats] | None = None, models: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    base = max(stats, key=lambda s: s.calls)
    names = {s.model for s in stats} | set(models)
    return {name: estimate_cost(name, stats, prefixes or [], base) for name in names}


def _verdicts(evidence: TaskEvidence, incumbent: str, candidate: str, d: np.ndarray,
              settled: np.ndarray | None = None, start: int = 1) -> None:
    times = np.arange(start, start + len(d), dtype=np.int64)
    evidence.add_verdicts(incumbent, candidate, times, d.astype(float),
                          np.ones(len(d), bool) if settled is None else settled)


def _paired(rng: np.random.Generator, n: int, better: float, worse: float) -> np.ndarray:
    """d = +1 with probability `better`, -1 with `worse`, else 0 (the answers agree)."""
    r = rng.random(n)
    return np.where(r < better, 1.0, np.where(r < better + worse, -1.0, 0.0))


def _task(calls: int = 2000) -> list[ModelStats]:
    return [model_stats(SONNET, calls=calls, lengths=np.full(200, 150))]


def test_paired_verdicts_close_to_the_incumbent_route_to_the_cheaper_model() -> None:
    stats = _task()
    evidence = TaskEvidence(0.05)
    _verdicts(evidence, SONNET, HAIKU, _paired(np.random.default_rng(1), 3000, 0.01, 0.014))
    decision = decide_route(stats, RoutingOptions(), evidence=evidence, costs=_costs(stats, models=(HAIKU,)),
                            window_calls=2000)
    assert decision.model == HAIKU and decision.changed and decision.evidenced
    gap = decision.gaps[HAIKU]
    assert -0.02 <= gap.low < gap.estimate < gap.high  # shown within the margin, not merely estimated there
    assert "anytime-valid" in decision.reason and decision.evaluate_model is None


def test_a_candidate_shown_worse_is_rejected_and_not_evaluated() -> None:
    stats = _task()
    evidence = TaskEvidence(0.05)
    _verdicts(evidence, SONNET, HAIKU, _paired(np.random.default_rng(2), 1500, 0.02, 0.09))
    decision = decide_route(stats, RoutingOptions(), evidence=evidence, costs=_costs(stats, models=(HAIKU,)),
                            window_calls=2000)
    assert decision.model == SONNET and HAIKU in decision.rejected
    assert decision.gaps[HAIKU].high < -0.02
    assert decision.evaluate_model is None and "ruled out" in decision.reason


def test_without_evidence_the_cheaper_model_is_evaluated_within_the_budget() -> None:
    stats = _task(calls=4000)
    costs = _costs(stats, models=(HAIKU, OPUS))
    decision = decide_route(stats, RoutingOptions(evaluation_budget=0.05), evidence=TaskEvidence(0.05),
                            costs=costs, window_calls=4000)
    assert decision.model == SONNET and not decision.changed
    assert decision.evaluate_model == HAIKU  # opus costs more: never evaluated for savings
    # The shadow copies cost Haiku's price on each sampled call: at most 5% of the task's own spend.
    assert decision.evaluate_share * costs[HAIKU].per_call <= 0.05 * costs[SONNET].per_call + 1e-12
    assert decision.reason.startswith(f"insufficient evidence for {HAIKU}")
    # What a process charges its first pairs: a copy that misses Haiku's cache (no judge without a judge model).
    assert decision.evaluate_pair_cost == pytest.approx(costs[HAIKU].uncached_per_call, rel=1e-3)


def test_evaluation_share_is_sized_to_the_verdicts_still_missing() -> None:
    stats = _task(calls=4000)
    evidence = TaskEvidence(0.05)
    _verdicts(evidence, SONNET, HAIKU, _paired(np.random.default_rng(3), 300, 0.01, 0.015))
    decision = decide_route(stats, RoutingOptions(evaluate_share=0.5, evaluation_budget=1.0), evidence=evidence,
                            costs=_costs(stats, models=(HAIKU,)), window_calls=4000)
    assert decision.model == SONNET and decision.evaluate_model == HAIKU
    assert decision.needed is not None and decision.needed > 0
    assert decision.evaluate_share == pytest.approx(max(decision.needed / 4000, 0.01), abs=1e-4)
    assert f"{decision.needed:,} more paired verdicts" in decision.reason


def test_unsettled_pairs_count_as_the_worst_case() -> None:
    """Half the pairs differ and nothing could say which answer is better: they might all be losses."""
    stats = _task()
    evidence = TaskEvidence(0.05)
    n = 4000
    _verdicts(evidence, SONNET, HAIKU, np.zeros(n), settled=np.arange(n) % 2 == 0)
    decision = decide_route(stats, RoutingOptions(), evidence=evidence, costs=_costs(stats, models=(HAIKU,)),
                            window_calls=2000)
    assert decision.model == SONNET
    assert decision.gaps[HAIKU].low < -0.4 and decision.gaps[HAIKU].high > 0.4


def test_a_pairs_price_counts_the_judge_calls_unsettled_pairs_need() -> None:
    stats = _task()
    evidence = TaskEvidence(0.05)
    _verdicts(evidence, SONNET, HAIKU, np.zeros(100), settled=np.arange(100) % 2 == 0)
    costs = _costs(stats, models=(HAIKU,))
    decision = decide_route(stats, RoutingOptions(judge_model=SONNET), evidence=evidence, costs=costs,
                            window_calls=2000)
    assert decision.evaluate_model == HAIKU
    # Half the pairs need the judge, asked twice: one Sonnet call per pair on average, on top of the copy.
    expected = costs[HAIKU].uncached_per_call + costs[SONNET].uncached_per_call
    assert decision.evaluate_pair_cost == pytest.approx(expected, rel=1e-3)


def test_a_small_lucky_sample_is_not_acted_on() -> None:
    """11 of 11 pairs won by the candidate: the bounds stay honest (never a degenerate [1, 1]) and a model is not
    judged on fewer than min_samples verdicts, however good they look."""
    stats = _task()
    evidence = TaskEvidence(0.05)
    _verdicts(evidence, SONNET, HAIKU, np.ones(11))
    decision = decide_route(stats, RoutingOptions(), evidence=evidence, costs=_costs(stats, models=(HAIKU,)),
                            window_calls=2000)
    gap = decision.gaps[HAIKU]
    assert gap.estimate == 1.0 and 0.0 < gap.low < 0.9
    assert decision.model == SONNET and decision.evaluate_model == HAIKU


def test_feedback_alone_decides_when_it_is_plentiful() -> None:
    rng = np.random.default_rng(4)
    n = 30_000
    sonnet = model_stats(SONNET, calls=n, lengths=np.full(n, 150), sample_scores=(rng.random(n) < 0.9) * 1.0)
    haiku = model_stats(HAIKU, calls=n, lengths=np.full(n, 150), sample_scores=(rng.random(n) < 0.9) * 1.0,
                        explore_calls=n - 1)
    evidence = TaskEvidence(0.05)
    for s in (sonnet, haiku):
        evidence.add_scores(s.model, s.times, s.scores)
    decision = decide_route([sonnet, haiku], RoutingOptions(), evidence=evidence,
                            costs=_costs([sonnet, haiku]), window_calls=n)
    assert decision.gaps[HAIKU].scores == (n, n)
    assert decision.model == HAIKU


def test_latency_limit_excludes_a_cheaper_model() -> None:
    sonnet = model_stats(SONNET, calls=3000, lengths=np.full(200, 150), ttft_p95=0.8)
    haiku = model_stats(HAIKU, calls=300, lengths=np.full(200, 150), ttft_p95=2.5)
    evidence = TaskEvidence(0.05)
    _verdicts(evidence, SONNET, HAIKU, np.zeros(3000))
    costs = _costs([sonnet, haiku])
    assert decide_route([sonnet, haiku], RoutingOptions(), evidence=evidence, costs=costs).model == HAIKU
    limited = decide_route([sonnet, haiku], RoutingOptions(max_ttft_p95=1.0), evidence=evidence, costs=costs)
    assert limited.model == SONNET and "TTFT" in limited.rejected[HAIKU]


def test_a_pricier_model_is_never_taken_for_quality() -> None:
    stats = _task()
    evidence = TaskEvidence(0.05)
    _verdicts(evidence, SONNET, OPUS, _paired(np.random.default_rng(5), 3000, 0.2, 0.0))  # opus clearly better
    decision = decide_route(stats, RoutingOptions(), evidence=evidence, costs=_costs(stats, models=(OPUS,)))
    assert decision.model == SONNET and "already the cheapest" in decision.reason


def test_a_further_move_fits_in_what_the_route_left_of_the_margin() -> None:
    """The task runs on Haiku under an earlier route that lost up to 0.015 of the 0.02 margin: moving on to a
    cheaper model needs its gap to Haiku bounded by the 0.005 left, not by the whole margin."""
    haiku = model_stats(HAIKU, calls=3000, lengths=np.full(200, 150))
    haiku = ModelStats(**{**haiku.__dict__, "requested_model": SONNET})
    evidence = TaskEvidence(0.05)
    _verdicts(evidence, HAIKU, "claude-3-5-haiku", _paired(np.random.default_rng(6), 20_000, 0.01, 0.012))
    costs = _costs([haiku], models=("claude-3-5-haiku", SONNET))
    fresh = decide_route([haiku], RoutingOptions(), evidence=evidence, costs=costs)
    assert fresh.model == "claude-3-5-haiku"  # within the whole margin of Haiku...
    routed = TaskMemory(route=HAIKU, route_low=-0.015)
    decision = decide_route([haiku], RoutingOptions(), evidence=evidence, costs=costs, memory=routed)
    assert decision.slack == pytest.approx(0.005)
    assert decision.model == HAIKU  # ...but not within what is left of it


def test_a_route_shown_to_lose_more_than_the_margin_is_undone() -> None:
    haiku = model_stats(HAIKU, calls=3000, lengths=np.full(200, 150))
    haiku = ModelStats(**{**haiku.__dict__, "requested_model": SONNET})
    evidence = TaskEvidence(0.05)
    _verdicts(evidence, SONNET, HAIKU, _paired(np.random.default_rng(7), 4000, 0.0, 0.08))
    decision = decide_route([haiku], RoutingOptions(), evidence=evidence,
                            costs=_costs([haiku], models=(SONNET,)), memory=TaskMemory(route=HAIKU, route_low=-0.01))
    assert decision.model == SONNET and decision.reason.startswith("back to")


def test_models_are_compared_with_the_caching_each_would_get() -> None:
    """A 1,500-token shared prefix, reused on every call, is cacheable on Sonnet (minimum 1,024) but not on Haiku
    (4,096): cached Sonnet is cheaper than uncached Haiku, so an equally good Haiku is not a saving."""
    calls = 2000
    sonnet = model_stats(SONNET, calls=calls, lengths=np.full(200, 20))
    sonnet = ModelStats(**{**sonnet.__dict__, "mean_input": 1600, "mean_output": 20})
    prefix = PrefixStats("t", "fp", SONNET, calls, 1500, calls - 1, {"5m": calls - 1, "1h": calls - 1}, 0, 0)
    costs = _costs([sonnet], [prefix], models=(HAIKU,))
    assert costs[SONNET].cache.ttl == "5m" and costs[HAIKU].cache.ttl == "none"
    assert costs[SONNET].per_call < costs[HAIKU].per_call < costs[SONNET].uncached_per_call
    evidence = TaskEvidence(0.05)
    _verdicts(evidence, SONNET, HAIKU, np.zeros(5000))  # identical answers throughout
    decision = decide_route([sonnet], RoutingOptions(), evidence=evidence, costs=costs)
    assert decision.model == SONNET


@pytest.mark.parametrize("prefix_tokens", [0, 6000])
def test_where_the_candidates_cache_matters_the_share_leaves_room_for_runs(prefix_tokens: int) -> None:
    """A 6,000-token prefix reused on every call: Haiku caches it (minimum 4,096), so a pair that continues a run
    costs a fraction of one that writes the cache, and the share is planned below what the budget would just
    sustain (a run that spends the whole budget ends at its first dearer pair). Without a prefix, every pair costs
    the same and the share is what the budget sustains."""
    calls = 4000
    sonnet = model_stats(SONNET, calls=calls, lengths=np.full(200, 20))
    sonnet = ModelStats(**{**sonnet.__dict__, "mean_input": prefix_tokens + 300, "mean_output": 20})
    prefixes = [PrefixStats("t", "fp", SONNET, calls, prefix_tokens, calls - 1,
                            {"5m": calls - 1, "1h": calls - 1}, 0, 0)] if prefix_tokens else []
    costs = _costs([sonnet], prefixes, models=(HAIKU,))
    decision = decide_route([sonnet], RoutingOptions(evaluation_budget=0.05), evidence=TaskEvidence(0.05),
                            costs=costs, window_calls=calls)
    sustained = 0.05 * costs[SONNET].per_call / costs[HAIKU].per_call
    assert decision.evaluate_model == HAIKU
    cached = costs[HAIKU].uncached_per_call > 1.5 * costs[HAIKU].per_call
    assert cached == bool(prefix_tokens)
    assert decision.evaluate_share == pytest.approx(sustained * (0.8 if cached else 1.0), abs=1e-4)
    # A process's first pairs are charged a cold copy's price: the dearer of the two where the cache matters.
    assert decision.evaluate_pair_cost == pytest.approx(costs[HAIKU].uncached_per_call, rel=1e-3)
    assert decision.evaluate_pair_cost > (1.5 if cached else 0.99) * costs[HAIKU].per_call


@pytest.mark.parametrize("bad", [{"quality_margin": 0}, {"alpha": 0.7}, {"evaluate_share": 0.9},
                                 {"evaluation_budget": 0}, {"explore_share": 0.3}, {"candidates": ("gpt-4",)},
                                 {"min_samples": 0}, {"max_ttft_p95": -1.0}])
def test_options_are_validated_where_they_are_built(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RoutingOptions(**bad)  # type: ignore[arg-type]
