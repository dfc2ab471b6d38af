"""Deterministic draws keyed by strings, so every answer is a pure function of (seed, request)."""

from __future__ import annotations

import hashlib
import math
from statistics import NormalDist

_NORMAL = NormalDist()
_SCALE = float(1 << 64)


def unit(*parts: object) -> float:
    """A uniform number in (0, 1) derived only from `parts`; never exactly 0 or 1, so quantiles stay finite."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / _SCALE


def lognormal(u: float, median: float, sigma: float) -> float:
    """The `u`-quantile of a lognormal with this median: the same formula samples and gives exact quantiles."""
    return median * math.exp(sigma * _NORMAL.inv_cdf(u))


def choose(u: float, weights: list[float]) -> int:
    """Index picked by cumulative weights (weights need not sum to 1)."""
    total = sum(weights)
    acc = 0.0
    for index, weight in enumerate(weights):
        acc += weight / total
        if u < acc:
            return index
    return len(weights) - 1
