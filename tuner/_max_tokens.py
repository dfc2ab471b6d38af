"""max_tokens: a split-conformal bound on output length at a target truncation rate, censoring-aware.

Anthropic bills actual output tokens, so a cap saves nothing on answers that finish early: it bounds tail cost,
latency and rate-limit reservation. Truncated calls are right-censored (true length >= their cap) and are treated as
+inf, so they can only push the bound up. Where input size explains length, a quantile model (CQR) is compiled into
size buckets so the policy stays a static table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from tuner._dataset import ModelStats, size_edges

# Buckets must beat the single cap by this share of the mean cap to be worth extra rules.
_BUCKET_GAIN = 0.10
_BUCKETS = 3
# Raising a cap: double it, since the data cannot say by how much the tail exceeds it.
_RAISE_FACTOR = 2


@dataclass(frozen=True)
class Bucket:
    input_min: int
    input_max: int | None
    max_tokens: int


@dataclass(frozen=True)
class CapDecision:
    max_tokens: int | None
    mode: str
    reason: str
    changed: bool
    buckets: tuple[Bucket, ...] = ()
    evidence: dict[str, object] = field(default_factory=dict)
    requested: int | None = None

    def mode_for(self, cap: int) -> str:
        """`cap` can only lower the caller's value: a cap above it must be `set` to take effect."""
        return "set" if self.requested is not None and cap > self.requested else "cap"


def conformal_bound(lengths: np.ndarray, censored: np.ndarray, target: float) -> float | None:
    """The ceil((n+1)(1-a))-th smallest length (censored = +inf); None when n is too small for the guarantee."""
    n = len(lengths)
    k = math.ceil((n + 1) * (1 - target))
    if n == 0 or k > n:
        return None
    values = np.where(censored, np.inf, lengths.astype(float))
    return float(np.partition(values, k - 1)[k - 1])


def min_samples(target: float) -> int:
    return max(math.ceil(1 / target) - 1, 1)


def _bucketed(stats: ModelStats, target: float, single: int) -> tuple[Bucket, ...]:
    """CQR: a quantile model of length given input size, conformalized on held-out rows, then bucketed."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    sizes, lengths, censored = stats.sizes, stats.lengths, stats.censored
    if len(lengths) < 4 * min_samples(target) or np.any(censored) or len(np.unique(sizes)) < 2:
        return ()
    # A canonical row order: the fit/calibration split below alternates rows, and readers (files, ClickHouse
    # samples) deliver the same calls in different orders; the policy must not depend on which.
    order = np.lexsort((lengths, sizes))
    sizes, lengths, censored = sizes[order], lengths[order], censored[order]
    x = np.log1p(sizes.astype(float)).reshape(-1, 1)
    fit, calibrate = np.arange(len(x)) % 2 == 0, np.arange(len(x)) % 2 == 1
    model = HistGradientBoostingRegressor(loss="quantile", quantile=1 - target, max_iter=60, random_state=0)
    model.fit(x[fit], lengths[fit])
    predicted = model.predict(x)
    correction = conformal_bound(lengths[calibrate] - predicted[calibrate], censored[calibrate], target)
    if correction is None:
        return ()
    caps = predicted + correction
    edges = size_edges(sizes, _BUCKETS)
    if not len(edges):
        return ()
    which = np.searchsorted(edges, sizes, side="right")
    buckets = []
    lows = [0, *edges.tolist()]
    for index, low in enumerate(lows):
        members = which == index
        if not np.any(members):
            return ()
        # The bucket cap covers every member's own conformal cap, so coverage is at least the marginal guarantee.
        cap = math.ceil(float(np.max(caps[members])))
        high = int(edges[index]) if index < len(edges) else None
        buckets.append(Bucket(input_min=int(low), input_max=high, max_tokens=max(cap, 1)))
    mean_cap = sum(b.max_tokens * np.count_nonzero(which == i) for i, b in enumerate(buckets)) / len(sizes)
    return tuple(buckets) if mean_cap < single * (1 - _BUCKET_GAIN) else ()


def decide_max_tokens(stats: ModelStats, target: float) -> CapDecision:
    """The cap for one task on the model it will run on (stats are that model's observations)."""
    n = len(stats.lengths)
    current, requested = stats.max_tokens, stats.requested_max_tokens
    # The truncation rate that matters is the one under today's cap: calls cut at an older, lower cap say
    # nothing about it (they still count as unknown lengths in the bound below).
    at_current = stats.caps >= current if current else np.ones(n, bool)
    observed = int(np.count_nonzero(at_current))
    truncated = int(np.count_nonzero(stats.censored & at_current))
    rate = truncated / observed if observed else 0.0
    evidence: dict[str, object] = {
        "samples": n,
        "samples_at_current_cap": observed,
        "truncated": truncated,
        "truncation_rate": round(rate, 5),
        "target": target,
        "current_max_tokens": current,
        "requested_max_tokens": requested,
    }
    buckets: tuple[Bucket, ...] = ()
    if observed and rate > target:
        cap = current * _RAISE_FACTOR if current else None
        reason = f"truncation rate {rate:.2%} is above the target {target:.2%}: the tail is censored, raise the cap"
    else:
        bound = conformal_bound(stats.lengths, stats.censored, target)
        if bound is None:
            # Keep a cap an earlier policy set; the caller's own value needs no rule.
            cap = current
            reason = f"insufficient evidence: {n} completed calls, need {min_samples(target)} for a {target:.2%} bound"
        elif math.isinf(bound):
            cap = current
            reason = "the conformal bound falls among truncated calls: keep the current cap"
        else:
            cap = max(int(bound), 1)
            evidence["p50_output_tokens"] = int(np.median(stats.lengths))
            evidence["conformal_bound"] = cap
            buckets = _bucketed(stats, target, cap) if current is None or cap <= current else ()
            if buckets:
                evidence["buckets"] = [
                    {"input_min": b.input_min, "input_max": b.input_max, "max_tokens": b.max_tokens} for b in buckets
                ]
            reason = (
                f"{target:.2%} conformal bound over {n} calls"
                + (f" (was {current})" if current is not None else "")
                + (f", in {len(buckets)} input-size buckets" if buckets else "")
            )
    changed = cap is not None and cap != current
    if cap is None or (cap == requested and not buckets):
        return CapDecision(None, "cap", reason, changed, (), evidence, requested)
    decision = CapDecision(cap, "cap", reason, changed, buckets, evidence, requested)
    return replace(decision, mode=decision.mode_for(cap))
