"""Anytime-valid bounds: coverage under repeated looks, honesty at small n, adaptation to low variance, and state
that continues exactly across tuning windows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tuner._sequential import BettingBound, half_width_after


def _normal_lower(x: np.ndarray) -> float:
    """The interval the tuner used before: mean - 1.96 * sd / sqrt(n), recomputed at every look."""
    return float(x.mean() - 1.96 * x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0


def test_coverage_holds_at_every_look_where_a_repeated_normal_interval_fails() -> None:
    """200 seeded streams of Bernoulli(0.3), looked at after every 25 observations up to 2,000 (80 looks): the
    betting bound is above the true mean at some look in at most 5% of streams; the normal interval recomputed at
    each look (what re-tuning every window did) is, far more often."""
    truth, runs, looks, step = 0.3, 200, 80, 25
    betting_misses = normal_misses = 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        bound = BettingBound(0.05, "lower")
        seen = np.empty(0)
        betting_wrong = normal_wrong = False
        for _ in range(looks):
            batch = (rng.random(step) < truth).astype(float)
            bound.update(batch)
            seen = np.concatenate([seen, batch])
            betting_wrong |= bound.bound() > truth
            # One-sided 95%: the old two-sided 1.96 bound was used as a one-sided test at 2.5% per look.
            normal_wrong |= _normal_lower(seen) > truth
        betting_misses += betting_wrong
        normal_misses += normal_wrong
    assert betting_misses / runs <= 0.05
    assert normal_misses > 2 * max(betting_misses, 1)


def test_small_samples_stay_inside_zero_one_and_honest() -> None:
    lower, upper = BettingBound(0.05, "lower"), BettingBound(0.05, "upper")
    lower.update([1.0] * 11)
    upper.update([1.0] * 11)
    assert 0.0 < lower.bound() < 0.8  # 11 of 11 is no proof of near-perfect quality
    assert upper.bound() == 1.0
    empty = BettingBound(0.05, "lower")
    assert empty.bound() == 0.0 and empty.n == 0 and empty.mean is None


def test_low_variance_gives_a_narrow_bound() -> None:
    """Paired differences that mostly agree (x = 0.5) prove a small gap with far fewer observations than
    independent pass/fail scores of the same means."""
    rng = np.random.default_rng(7)
    n = 1500
    r = rng.random(n)
    paired = np.where(r < 0.01, 1.0, np.where(r < 0.025, 0.0, 0.5))  # d = +1, -1 or 0, mapped to [0, 1]
    tight = BettingBound(0.05, "lower")
    tight.update(paired)
    wide = BettingBound(0.05, "lower")
    wide.update((rng.random(n) < 0.5).astype(float))
    assert paired.mean() - tight.bound() < 0.5 * (0.5 - wide.bound())


def test_state_continues_exactly_across_windows() -> None:
    rng = np.random.default_rng(3)
    first, second = rng.random(700), rng.random(900)
    whole = BettingBound(0.1, "upper")
    whole.update(np.concatenate([first, second]))
    split = BettingBound(0.1, "upper")
    split.update(first)
    carried = BettingBound.restore(split.state())
    carried.update(second)
    assert carried.n == whole.n == 1600
    assert carried.bound() == pytest.approx(whole.bound(), abs=1e-9)
    assert carried.mean == pytest.approx(whole.mean)


def test_a_bound_never_loosens_when_more_data_arrives() -> None:
    bound = BettingBound(0.05, "lower")
    bound.update(np.ones(200))
    high = bound.bound()
    bound.update(np.zeros(50))  # a bad streak: the running intersection keeps what was shown
    assert bound.bound() == high


@pytest.mark.parametrize("bad", [{"alpha": 0.0, "side": "lower"}, {"alpha": 0.05, "side": "both"}])
def test_bad_parameters_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        BettingBound(**bad)  # type: ignore[arg-type]


def test_restore_refuses_a_damaged_state() -> None:
    state = BettingBound(0.05, "lower").state()
    state["log_capital"] = state["log_capital"][:10]
    with pytest.raises(ValueError):
        BettingBound.restore(state)


def test_planning_width_shrinks_with_n_and_grows_with_spread() -> None:
    assert half_width_after(4000, 0.1, 0.05) < half_width_after(400, 0.1, 0.05)
    assert half_width_after(400, 0.3, 0.05) > half_width_after(400, 0.1, 0.05)
    assert half_width_after(0, 0.1, 0.05) == float("inf")
