"""Each decision on constructed data whose right answer is known, including censoring and missing evidence."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from tuner._caching import decide_cache
from tuner._dataset import ModelStats, PrefixStats, Quality
from tuner._max_tokens import conformal_bound, decide_max_tokens
from tuner._routing import RoutingOptions, decide_route, decide_route_by_size


def _stats(
    model: str = "claude-sonnet-4-6",
    *,
    lengths: np.ndarray | list[int] = (),
    censored: np.ndarray | list[bool] | None = None,
    sizes: np.ndarray | list[int] | None = None,
    calls: int | None = None,
    cost: float = 0.01,
    scores: np.ndarray | None = None,
    max_tokens: int | None = 1024,
    requested: int | None = None,
    caps: np.ndarray | None = None,
    sample_scores: np.ndarray | None = None,
    ttft_p95: float | None = None,
    explore_calls: int = 0,
) -> ModelStats:
    lengths = np.asarray(lengths, dtype=np.int64)
    n = calls if calls is not None else max(len(lengths), len(scores) if scores is not None else 0)
    quality = None
    if scores is None and sample_scores is not None:
        scores = np.asarray(sample_scores, float)
    if scores is not None and len(scores):
        quality = Quality(len(scores), float(np.mean(scores)), float(np.std(scores, ddof=1)))
    censored = np.zeros(len(lengths), bool) if censored is None else np.asarray(censored, bool)
    return ModelStats(
        task="t",
        model=model,
        calls=n,
        explore_calls=explore_calls,
        errors=0,
        truncated=int(censored.sum()),
        refusals=0,
        cancelled=0,
        cost_total=cost * n,
        mean_input=1000,
        mean_output=200,
        mean_cache_read=0,
        mean_cache_write=0,
        ttft_p95=ttft_p95,
        duration_p95=None,
        max_tokens=max_tokens,
        requested_max_tokens=requested or max_tokens,
        requested_model=model,
        quality=quality,
        lengths=lengths,
        sizes=np.full(len(lengths), 1000) if sizes is None else np.asarray(sizes, np.int64),
        censored=censored,
        caps=np.full(len(lengths), max_tokens or 0) if caps is None else np.asarray(caps, np.int64),
        scores=np.full(len(lengths), np.nan) if sample_scores is None else np.asarray(sample_scores, float),
    )


# ------------------------------------------------------------------------------------------------------ max_tokens


def test_conformal_bound_is_the_ceil_n_plus_1_rank() -> None:
    lengths = np.arange(1, 200)  # 1..199, n = 199: rank ceil(200 * 0.99) = 198
    assert conformal_bound(lengths, np.zeros(199, bool), 0.01) == 198
    assert conformal_bound(np.arange(1, 99), np.zeros(98, bool), 0.01) is None  # needs 99 samples


def test_cap_is_lowered_to_the_bound() -> None:
    rng = np.random.default_rng(0)
    decision = decide_max_tokens(_stats(lengths=rng.permutation(np.arange(1, 200))), 0.01)
    assert (decision.max_tokens, decision.mode, decision.changed) == (198, "cap", True)
    assert decision.evidence["samples"] == 199


def test_insufficient_samples_keep_the_callers_cap() -> None:
    decision = decide_max_tokens(_stats(lengths=np.arange(1, 51)), 0.01)
    assert decision.max_tokens is None and not decision.changed
    assert decision.reason.startswith("insufficient evidence: 50 completed calls, need 99")


def test_truncation_above_target_raises_and_never_lowers() -> None:
    lengths = np.r_[np.full(180, 50), np.full(20, 300)]
    censored = lengths == 300  # 10% hit the cap of 300: their true length is unknown
    decision = decide_max_tokens(_stats(lengths=lengths, censored=censored, max_tokens=300), 0.01)
    assert (decision.max_tokens, decision.mode) == (600, "set")
    assert "above the target" in decision.reason


def test_truncations_under_an_older_lower_cap_do_not_force_a_raise() -> None:
    # 300 calls at cap 1024 (15 cut: 5%), then 700 at today's 2048 (3 cut: 0.4%, under the 1% target).
    lengths = np.r_[np.arange(1, 286), np.full(15, 1024), np.arange(1, 698), np.full(3, 2048)]
    caps = np.r_[np.full(300, 1024), np.full(700, 2048)]
    censored = np.r_[np.zeros(285, bool), np.ones(15, bool), np.zeros(697, bool), np.ones(3, bool)]
    decision = decide_max_tokens(
        _stats(lengths=lengths, censored=censored, caps=caps, max_tokens=2048, requested=1024), 0.01
    )
    assert decision.evidence["truncation_rate"] == pytest.approx(3 / 700, abs=1e-5)
    assert decision.max_tokens == 2048 and decision.mode == "set"  # 18 unknown lengths > n - k = 9: keep 2048
    # Counting the old cuts too would have raised the cap to 4096.
    pooled = decide_max_tokens(
        _stats(lengths=lengths, censored=censored, caps=np.full(1000, 2048), max_tokens=2048, requested=1024), 0.01
    )
    assert pooled.max_tokens == 4096


def test_censored_tail_at_target_keeps_the_cap() -> None:
    # n = 100 at a = 5%: rank 96; 5 censored values (exactly the target rate) make the 96th value unknown.
    lengths = np.r_[np.arange(1, 96), np.full(5, 400)]
    censored = lengths == 400
    decision = decide_max_tokens(_stats(lengths=lengths, censored=censored, max_tokens=400), 0.05)
    assert decision.max_tokens is None and "keep the current cap" in decision.reason


def test_a_cap_from_an_earlier_policy_is_kept_or_moved_never_dropped() -> None:
    # The caller asks for 4096; an earlier policy applied 300. Too few samples: keep 300 rather than revert.
    few = decide_max_tokens(_stats(lengths=np.arange(1, 51), max_tokens=300, requested=4096), 0.01)
    assert (few.max_tokens, few.mode, few.changed) == (300, "cap", False)
    # Enough samples: move to the bound, whichever side of 300 it is on.
    lower = decide_max_tokens(_stats(lengths=np.arange(1, 200), max_tokens=300, requested=4096), 0.01)
    assert (lower.max_tokens, lower.mode) == (198, "cap")


def test_a_raise_above_the_callers_value_is_a_set() -> None:
    # An earlier policy raised the caller's 1024 to 2048 (set); outputs now fit under 1500 with margin.
    lengths = np.r_[np.arange(1, 190), np.full(10, 1500)]
    decision = decide_max_tokens(_stats(lengths=lengths, max_tokens=2048, requested=1024), 0.01)
    assert (decision.max_tokens, decision.mode) == (1500, "set")


def test_input_size_buckets_tighten_the_cap_and_keep_coverage() -> None:
    rng = np.random.default_rng(1)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        sizes = rng.choice([500, 5_000, 50_000], size=n)
        lengths = (sizes / 50 * rng.uniform(0.5, 1.5, size=n)).astype(np.int64) + 1
        return sizes, lengths

    sizes, lengths = draw(4000)
    decision = decide_max_tokens(_stats(lengths=lengths, sizes=sizes, max_tokens=4096), 0.02)
    assert len(decision.buckets) >= 2
    caps = [b.max_tokens for b in decision.buckets]
    assert caps == sorted(caps) and caps[0] < decision.max_tokens / 4
    assert decision.buckets[0].input_min == 0 and decision.buckets[-1].input_max is None
    # Fresh data from the same distribution: the realised truncation rate stays near the 2% target.
    new_sizes, new_lengths = draw(20_000)
    bucket_of = [next(b for b in decision.buckets if b.input_max is None or s < b.input_max) for s in new_sizes]
    truncated = np.mean([length > b.max_tokens for length, b in zip(new_lengths, bucket_of, strict=True)])
    assert truncated <= 0.03


# ------------------------------------------------------------------------------------------------------ routing


def _scores(rng: np.random.Generator, p: float, n: int) -> np.ndarray:
    return (rng.random(n) < p).astype(float)


def test_cheaper_model_within_margin_is_chosen() -> None:
    rng = np.random.default_rng(2)
    stats = [
        _stats("claude-sonnet-4-6", calls=5000, cost=0.02, scores=_scores(rng, 0.95, 5000)),
        _stats("claude-haiku-4-5", calls=5000, cost=0.005, scores=_scores(rng, 0.95, 5000), explore_calls=5000),
    ]
    decision = decide_route(stats, RoutingOptions(quality_margin=0.02))
    assert (decision.current, decision.model) == ("claude-sonnet-4-6", "claude-haiku-4-5")
    assert decision.explore_model is None


def test_clearly_worse_cheaper_model_is_rejected() -> None:
    rng = np.random.default_rng(3)
    stats = [
        _stats("claude-sonnet-4-6", calls=3000, cost=0.02, scores=_scores(rng, 0.95, 3000)),
        _stats("claude-haiku-4-5", calls=500, cost=0.005, scores=_scores(rng, 0.80, 500)),
    ]
    decision = decide_route(stats, RoutingOptions(quality_margin=0.02))
    assert decision.model == "claude-sonnet-4-6" and not decision.changed
    assert decision.evidence["models"]["claude-haiku-4-5"]["quality_gap_ci95"][0] < -0.1


def test_equal_means_but_too_few_samples_do_not_move() -> None:
    stats = [
        _stats("claude-sonnet-4-6", calls=2000, cost=0.02, scores=np.r_[np.ones(1800), np.zeros(200)]),
        _stats("claude-haiku-4-5", calls=40, cost=0.005, scores=np.r_[np.ones(36), np.zeros(4)]),
    ]
    decision = decide_route(stats, RoutingOptions(quality_margin=0.02, min_samples=30))
    assert decision.model == "claude-sonnet-4-6"  # the interval of a 40-call sample is wider than the margin


def test_cheaper_candidate_without_evidence_gets_a_bounded_exploration_share() -> None:
    rng = np.random.default_rng(5)
    stats = [
        _stats("claude-sonnet-4-6", calls=400, cost=0.02, scores=_scores(rng, 0.9, 400)),
        _stats("claude-haiku-4-5", calls=5, cost=0.005, scores=np.ones(5)),
    ]
    decision = decide_route(stats, RoutingOptions(min_samples=30, explore_share=0.05))
    assert decision.model == "claude-sonnet-4-6"
    assert decision.explore_model == "claude-haiku-4-5"
    assert 0 < decision.explore_share <= 0.05


def test_unseen_named_candidate_is_explored_at_the_feedback_rate() -> None:
    # 4000 calls, 2000 scored (sd 0.3): resolving a 0.05 margin takes 2 * (1.96 * 0.3 / 0.05)^2 = 277 scores,
    # 13.9% of the scored calls; bounded to 10% by the option.
    scores = np.r_[np.ones(1800), np.zeros(200)]
    stats = [_stats("claude-sonnet-4-6", calls=4000, cost=0.02, scores=scores)]
    options = RoutingOptions(candidates=("claude-haiku-4-5", "claude-opus-4-6"), explore_share=0.1, quality_margin=0.05)
    decision = decide_route(stats, options)
    assert decision.model == "claude-sonnet-4-6"
    assert decision.explore_model == "claude-haiku-4-5"  # opus costs more: never explored for savings
    assert decision.explore_share == 0.1
    needed = math.ceil(2 * (1.96 * np.std(scores, ddof=1) / 0.05) ** 2)
    assert decide_route(stats, replace(options, explore_share=0.2)).explore_share == round(needed / 2000, 3)


def test_no_feedback_keeps_the_model_and_does_not_explore() -> None:
    stats = [_stats("claude-sonnet-4-6", calls=1000, cost=0.02)]
    decision = decide_route(stats, RoutingOptions(candidates=("claude-haiku-4-5",)))
    assert decision.model == "claude-sonnet-4-6" and decision.explore_model is None
    assert decision.reason.startswith("insufficient evidence")


def test_noise_in_a_pricier_models_score_does_not_force_an_upgrade() -> None:
    # Same true quality; opus scores 1 point higher by chance on fewer calls. Sonnet is not shown worse: keep it.
    stats = [
        _stats("claude-sonnet-4-6", calls=14000, cost=0.02, scores=np.r_[np.ones(12600), np.zeros(1400)]),
        _stats("claude-opus-4-6", calls=3000, cost=0.03, scores=np.r_[np.ones(2730), np.zeros(270)]),
    ]
    assert decide_route(stats, RoutingOptions(quality_margin=0.005)).model == "claude-sonnet-4-6"
    # Shown clearly worse than the margin allows: upgrade.
    stats[1] = _stats("claude-opus-4-6", calls=3000, cost=0.03, scores=np.r_[np.ones(2940), np.zeros(60)])
    assert decide_route(stats, RoutingOptions(quality_margin=0.02)).model == "claude-opus-4-6"


def test_current_model_without_evidence_is_kept() -> None:
    rng = np.random.default_rng(8)
    stats = [
        _stats("claude-sonnet-4-6", calls=3000, cost=0.02, scores=np.ones(10)),
        _stats("claude-haiku-4-5", calls=300, cost=0.005, scores=_scores(rng, 0.9, 300), explore_calls=300),
    ]
    decision = decide_route(stats, RoutingOptions())
    assert decision.model == "claude-sonnet-4-6" and "the current model" in decision.reason


def test_latency_limit_excludes_a_cheaper_model() -> None:
    rng = np.random.default_rng(6)
    stats = [
        _stats("claude-sonnet-4-6", calls=3000, cost=0.02, scores=_scores(rng, 0.95, 3000), ttft_p95=0.8),
        _stats("claude-haiku-4-5", calls=3000, cost=0.005, scores=_scores(rng, 0.95, 3000), ttft_p95=2.5),
    ]
    assert decide_route(stats, RoutingOptions()).model == "claude-haiku-4-5"
    limited = decide_route(stats, RoutingOptions(max_ttft_p95=1.0))
    assert limited.model == "claude-sonnet-4-6"
    assert "claude-haiku-4-5" in limited.evidence["rejected"]


def _sized(model: str, cost: float, small: float, large: float, n: int, rng: np.random.Generator) -> ModelStats:
    """n calls with 500-token inputs scoring `small`, n with 20,000-token inputs scoring `large`."""
    sizes = np.r_[np.full(n, 500), np.full(n, 20_000)]
    scores = np.r_[_scores(rng, small, n), _scores(rng, large, n)]
    return _stats(model, lengths=np.full(2 * n, 50), sizes=sizes, cost=cost, sample_scores=scores)


def test_routing_by_input_size_where_quality_differs_by_size() -> None:
    rng = np.random.default_rng(9)
    stats = [
        _sized("claude-sonnet-4-6", 0.02, 0.95, 0.95, 1500, rng),
        _sized("claude-haiku-4-5", 0.005, 0.95, 0.70, 1500, rng),
    ]
    assert decide_route(stats, RoutingOptions()).model == "claude-sonnet-4-6"  # pooled, haiku is worse
    segments = decide_route_by_size(stats, RoutingOptions())
    assert [(s.input_min, s.input_max, s.route.model) for s in segments] == [
        (0, 20_000, "claude-haiku-4-5"),
        (20_000, None, "claude-sonnet-4-6"),
    ]
    assert [s.share for s in segments] == [0.5, 0.5]


def test_no_size_split_without_a_real_difference() -> None:
    rng = np.random.default_rng(10)
    stats = [
        _sized("claude-sonnet-4-6", 0.02, 0.95, 0.95, 1500, rng),
        _sized("claude-haiku-4-5", 0.005, 0.95, 0.95, 300, rng),  # same quality, fewer calls: wider intervals
    ]
    assert decide_route_by_size(stats, RoutingOptions()) == ()


# ------------------------------------------------------------------------------------------------------ caching


def _prefix(gaps_5m: int, gaps_1h: int, gaps: int = 100, tokens: int = 3000) -> PrefixStats:
    return PrefixStats("t", "fp", "claude-sonnet-4-6", gaps + 1, tokens, gaps, {"5m": gaps_5m, "1h": gaps_1h}, 0, 0)


@pytest.mark.parametrize(
    ("gaps_5m", "gaps_1h", "ttl"),
    [
        (100, 100, "5m"),  # back-to-back calls: the cheaper write wins the tie
        (0, 100, "1h"),  # every 30 min: only 1h hits
        (0, 0, "none"),  # every 2 h: nothing hits
        (25, 25, "5m"),  # p = 0.25 > 0.217, the 5m break-even with r = 0.1, w = 1.25
        (20, 20, "none"),  # p = 0.20: just below break-even
        (0, 50, "none"),  # p(1h) = 0.50 < 0.526, the 1h break-even
        (0, 60, "1h"),
    ],
)
def test_ttl_follows_the_break_even_hit_rates(gaps_5m: int, gaps_1h: int, ttl: str) -> None:
    assert decide_cache([_prefix(gaps_5m, gaps_1h)], "claude-sonnet-4-6").ttl == ttl


def test_saving_per_call_is_the_expected_prefix_saving() -> None:
    decision = decide_cache([_prefix(99, 99, gaps=99, tokens=10_000)], "claude-sonnet-4-6")
    # 100 calls: one write (1.25x) then 99 reads (0.1x) of a 10k-token prefix at $3/M.
    assert decision.saving_per_call == pytest.approx(10_000 * 3e-6 * (1 - (0.99 * 0.1 + 0.01 * 1.25)))


def test_prefixes_seen_once_count_as_writes() -> None:
    hot = _prefix(100, 100, gaps=100, tokens=5000)  # 101 calls, 100 hits
    singles = [
        PrefixStats("t", f"user-{i}", "claude-sonnet-4-6", 1, 5000, 0, {"5m": 0, "1h": 0}, 0, 0) for i in range(400)
    ]
    assert decide_cache([hot], "claude-sonnet-4-6").ttl == "5m"
    # 501 calls, 100 hits: p = 0.2 is below the 5m break-even of 0.217.
    assert decide_cache([hot, *singles], "claude-sonnet-4-6").ttl == "none"


def test_prefix_below_the_model_minimum_is_never_cached() -> None:
    decision = decide_cache([_prefix(100, 100, tokens=3000)], "claude-haiku-4-5")  # haiku 4.5 minimum: 4096
    assert decision.ttl == "none" and "cache minimum of 4096" in decision.reason


def test_ttl_is_chosen_over_all_prefixes_of_a_task() -> None:
    hot = _prefix(100, 100, tokens=2000)
    cold = PrefixStats("t", "fp2", "claude-sonnet-4-6", 301, 20_000, 300, {"5m": 0, "1h": 300}, 0, 0)
    decision = decide_cache([hot, cold], "claude-sonnet-4-6")
    assert decision.ttl == "1h"  # the big hourly prefix dominates the cost


# ------------------------------------------------------------------------------------------ tuning under a policy


def _routed_workload(tmp_path, *, routed: bool):  # type: ignore[no-untyped-def]
    """A task whose callers ask for Sonnet; with `routed`, an earlier policy already sends it all to Haiku."""
    import random

    from tuner import synthetic as syn
    from tuner._ingest import load_dataset

    rng = random.Random(5)
    spans = []
    for i in range(4000):
        start = 1_763_900_000_000_000_000 + i * 10**9
        served = "claude-haiku-4-5" if routed or i % 2 else "claude-sonnet-4-6"
        spans.append(syn.call(start_ns=start, model=served, task="summarize", output_tokens=rng.randint(80, 300),
                              max_tokens=1024, response_id=f"msg_{i}",
                              requested_model="claude-sonnet-4-6" if served != "claude-sonnet-4-6" else None))
        # Exactly 90% good on each model: the evidence is as strong as its 2,000 scores per model allow.
        spans.append(syn.feedback(start_ns=start + 1, response_id=f"msg_{i}", score=float((i // 2) % 10 != 0)))
    dataset, issues = load_dataset([str(syn.write_otlp(tmp_path / f"routed-{routed}.json", spans))])
    assert issues.total == 0
    return dataset


def test_keeping_a_routed_model_keeps_the_route(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Tuning on traffic an earlier policy routed: 'keep today's model' must not hand the task back to the
    model its callers ask for."""
    from tuner._tune import TuneOptions, build_policy, decide_all

    dataset = _routed_workload(tmp_path, routed=True)
    [decision] = decide_all(dataset, TuneOptions())
    assert decision.route.current == "claude-haiku-4-5" and not decision.route.changed
    rules = [r for r in build_policy(dataset, [decision], TuneOptions()).rules if r.task == "summarize"]
    assert rules and all(r.model == "claude-haiku-4-5" for r in rules)
    assert rules[-1].evidence["routing"]["callers_ask_for"] == "claude-sonnet-4-6"
    from tuner._report import summary_rows

    assert summary_rows([decision])[0][2] == "claude-sonnet-4-6 -> claude-haiku-4-5"  # what the rule does


def test_routing_decided_from_evidence_names_the_cheaper_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tuner._tune import TuneOptions, build_policy, decide_all

    dataset = _routed_workload(tmp_path, routed=False)  # half the calls explored Haiku
    [decision] = decide_all(dataset, TuneOptions())
    rules = [r for r in build_policy(dataset, [decision], TuneOptions()).rules if r.task == "summarize"]
    assert decision.route.model == "claude-haiku-4-5"
    assert rules and rules[-1].model == "claude-haiku-4-5"


def test_inconclusive_candidate_is_explored_until_resolved() -> None:
    """Past min_samples, a cheaper model whose interval straddles the margin is explored further; one shown
    worse is not, and neither is one that already has the scores a resolution needs."""
    rng = np.random.default_rng(11)
    base = _stats("claude-sonnet-4-6", calls=2000, cost=0.02, scores=_scores(rng, 0.9, 2000))
    options = RoutingOptions(min_samples=30, quality_margin=0.02, explore_share=0.2)
    unsure = _stats("claude-haiku-4-5", calls=40, cost=0.005, scores=np.r_[np.ones(35), np.zeros(5)])
    decision = decide_route([base, unsure], options)
    low, high = decision.evidence["models"]["claude-haiku-4-5"]["quality_gap_ci95"]
    assert low < -0.02 <= high  # the premise: inconclusive
    assert decision.model == "claude-sonnet-4-6"
    assert decision.explore_model == "claude-haiku-4-5" and 0 < decision.explore_share <= 0.2

    worse = _stats("claude-haiku-4-5", calls=400, cost=0.005, scores=_scores(rng, 0.6, 400))
    assert decide_route([base, worse], options).explore_model is None

    plenty = _stats("claude-haiku-4-5", calls=3000, cost=0.005, scores=_scores(rng, 0.88, 3000))
    decision = decide_route([base, plenty], options)
    low, high = decision.evidence["models"]["claude-haiku-4-5"]["quality_gap_ci95"]
    assert low < -0.02 <= high  # still straddling, but past the scores a resolution needs (about 1,700)
    assert decision.explore_model is None


def test_a_small_sample_on_top_by_chance_is_not_taken() -> None:
    """A cheaper model whose 55 scores came out above the current model's must still be shown close to the
    current model: with an interval 0.14 wide it is not, however good its mean looks."""
    base = _stats("claude-sonnet-4-6", calls=220, cost=0.007, scores=np.r_[np.ones(206), np.zeros(14)])
    lucky = _stats("claude-haiku-4-5", calls=55, cost=0.0024, scores=np.r_[np.ones(52), np.zeros(3)])
    decision = decide_route([base, lucky], RoutingOptions(quality_margin=0.02, min_samples=30))
    assert lucky.quality.mean > base.quality.mean  # the premise: the cheaper model is the best on its mean
    assert decision.model == "claude-sonnet-4-6" and not decision.changed
    low, _ = decision.evidence["models"]["claude-haiku-4-5"]["quality_gap_ci95"]
    assert low < -0.02
