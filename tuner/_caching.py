"""Prompt caching: none, 5m or 1h per task, from the observed reuse gaps of each prefix fingerprint.

For a prefix with hit probability p under TTL T, the expected prefix cost relative to no caching is
p*r + (1-p)*w (r read, w write multiplier of the model). p is the share of the prefix's calls that follow the
previous call of the same prefix within T: the first call of every prefix is a write, so a prefix seen once
(a per-user prompt, say) counts as pure cost rather than being left out. A policy rule
cannot select a fingerprint, so the task's TTL is the one with the lowest expected cost summed over its prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from otel_claude.catalog import resolve
from tuner._dataset import PrefixStats

_PER_MILLION = 1e-6


@dataclass(frozen=True)
class CacheDecision:
    ttl: str
    reason: str
    saving_per_call: float
    evidence: dict[str, object] = field(default_factory=dict)


def relative_cost(hit: float, ttl: str, read_multiplier: float, write_multiplier: float) -> float:
    """Expected prefix cost with caching at `ttl` relative to no caching."""
    if ttl == "none":
        return 1.0
    return hit * read_multiplier + (1 - hit) * write_multiplier


def decide_cache(prefixes: list[PrefixStats], model: str) -> CacheDecision:
    """Prefixes: every fingerprint seen on one task; model: the model the task will run on."""
    info = resolve(model)
    if info is None:
        return CacheDecision("none", f"unknown model {model!r}: no cache prices", 0.0)
    if not prefixes:
        return CacheDecision("none", "no prefix fingerprints recorded for this task", 0.0)
    writes = {"5m": info.write_multiplier_5m, "1h": info.write_multiplier_1h}
    totals = {"none": 0.0, "5m": 0.0, "1h": 0.0}
    calls = 0
    rows = []
    for p in prefixes:
        calls += p.calls
        row: dict[str, object] = {"fingerprint": p.fingerprint, "calls": p.calls, "prefix_tokens": p.prefix_tokens}
        if p.prefix_tokens < info.cache_min_tokens:
            row["cacheable"] = False
            # Uncacheable prefixes cost the same under every choice; they only dilute the per-call figures.
            rows.append(row)
            continue
        base = p.calls * p.prefix_tokens * info.input * _PER_MILLION
        totals["none"] += base
        for ttl, write in writes.items():
            hit = p.gaps_within[ttl] / p.calls
            row[f"hit_{ttl}"] = round(hit, 4)
            totals[ttl] += base * relative_cost(hit, ttl, info.read_multiplier, write)
        rows.append(row)
    evidence: dict[str, object] = {
        "model": info.model,
        "cache_min_tokens": info.cache_min_tokens,
        "read_multiplier": round(info.read_multiplier, 4),
        "write_multipliers": {k: round(v, 4) for k, v in writes.items()},
        "prefixes": rows,
    }
    if totals["none"] == 0:
        reason = f"no prefix reaches the model's cache minimum of {info.cache_min_tokens} tokens with reuse"
        return CacheDecision("none", reason, 0.0, evidence)
    best = min(("none", "5m", "1h"), key=lambda ttl: (totals[ttl], ttl != "none"))
    saving = (totals["none"] - totals[best]) / calls
    evidence["expected_prefix_cost_relative"] = {k: round(v / totals["none"], 4) for k, v in totals.items()}
    if best == "none":
        return CacheDecision("none", "reuse gaps too long: caching would cost more than it saves", 0.0, evidence)
    reason = f"{best} caching cuts the expected prefix cost to {totals[best] / totals['none']:.0%}"
    return CacheDecision(best, reason, saving, evidence)
