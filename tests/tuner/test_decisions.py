"""Each decision on constructed data whose right answer is known, including censoring and missing evidence."""

from __future__ import annotations

import numpy as np
import pytest
from tuner_helpers import model_stats as _stats

from tuner._caching import decide_cache
from tuner._dataset import PrefixStats
from tuner._max_tokens import conformal_bound, decide_max_tokens

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
