"""Conversation caching: none, 5m or 1h per task, from how its conversations grow and how long their users think.

With conversation caching every call writes a cache entry ending at its newest user message, and the next turn
reads it when it comes within the TTL (a read refreshes a 5m entry). Per call, in units of the model's input
price, with S the shared prefix (tools + system), R what the previous turn sent (S included), T the request:

    no conversation caching:  S*rho + (T - S)
    the next turn's read hits: R*r + (T - R)*w                 (everything the previous turn sent is read)
    a miss (or a first turn):  S*rho' + (T - S)*w  when T reaches the model's cache minimum, else as without
                               (rho' = rho when the shared prefix has breakpoints of its own, else w)

r and w are the model's read and write multipliers, rho the shared prefix's expected relative cost under the
shared-prefix decision (`_caching`). A continuing call hits when the gap since its history was last sent is below
the TTL and that history reaches the model's minimum (else nothing was written); a call whose previous turn lies
outside the data gets the hit rate of the calls whose gap is known. The expected saving of a TTL is the mean of
the per-call savings with a 95% interval (normal approximation; calls of one conversation are treated as
independent, so the interval is somewhat too narrow when users differ in how long they think), and a TTL is
chosen only when the interval's lower end is above zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from otel_claude.catalog import ModelInfo, resolve
from tuner._dataset import TTL_SECONDS, ConversationStats

_PER_MILLION = 1e-6
_Z95 = 1.96
TTLS = ("none", "5m", "1h")
# Turn ranges the report shows history sizes for.
TURN_BUCKETS = ((1, 1), (2, 2), (3, 4), (5, 8), (9, None))


@dataclass(frozen=True)
class ConversationDecision:
    ttl: str
    reason: str
    saving_per_call: float = 0.0  # expected, per call of the task, against no conversation caching
    evidence: dict[str, object] = field(default_factory=dict)
    prefix_ttl: str | None = None  # the shared prefix's TTL the choice assumes, when the shared prefix is cached


def _write_multiplier(info: ModelInfo, ttl: str) -> float:
    return info.write_multiplier_5m if ttl == "5m" else info.write_multiplier_1h


def hit_probability(stats: ConversationStats, info: ModelInfo, ttl: str) -> np.ndarray:
    """Per sampled call: the probability that its history is still cached under `ttl`."""
    if ttl == "none":
        return np.zeros(len(stats.turn))
    within = stats.gap < TTL_SECONDS[ttl]  # NaN compares False
    known = ~np.isnan(stats.gap)
    continuing = stats.turn >= 1
    linked = continuing & known
    share = float(np.mean(within[linked])) if np.any(linked) else 0.0
    hit = np.where(known, within.astype(np.float64), share)
    return np.where(continuing & (stats.reusable >= info.cache_min_tokens), hit, 0.0)


def _relative_costs(stats: ConversationStats, info: ModelInfo, ttl: str, prefix_ttl: str,
                    prefix_relative: float) -> np.ndarray:
    """Per sampled call: input cost in tokens at the model's base input price."""
    s, r_, t = stats.prefix, stats.reusable, stats.total
    without = s * prefix_relative + (t - s)
    if ttl == "none":
        return without
    read, write = info.read_multiplier, _write_multiplier(info, ttl)
    hit = hit_probability(stats, info, ttl)
    prefix_on_miss = prefix_relative if prefix_ttl != "none" else write
    miss = np.where(t >= info.cache_min_tokens, s * prefix_on_miss + (t - s) * write, without)
    return hit * (r_ * read + (t - r_) * write) + (1 - hit) * miss


def conversation_cost(stats: ConversationStats, info: ModelInfo, ttl: str, prefix_ttl: str = "none",
                      prefix_relative: float = 1.0) -> float:
    """Expected input cost in $ per call of the task's conversation calls on `info`'s model, with conversation
    caching at `ttl` ("none": without) beside shared-prefix caching at `prefix_ttl` of relative cost
    `prefix_relative` (1.0 and "none": no separate prefix caching)."""
    if not len(stats.turn):
        return 0.0
    costs = _relative_costs(stats, info, ttl, prefix_ttl, prefix_relative)
    return float(np.mean(costs)) * info.input * _PER_MILLION


def _wilson(successes: int, n: int) -> list[float]:
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    centre = (p + _Z95**2 / (2 * n)) / (1 + _Z95**2 / n)
    half = _Z95 * math.sqrt(p * (1 - p) / n + _Z95**2 / (4 * n * n)) / (1 + _Z95**2 / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def history_by_turn(stats: ConversationStats) -> list[dict[str, object]]:
    """Mean tokens resent from earlier turns, per range of turns (what the report shows)."""
    rows = []
    for low, high in TURN_BUCKETS:
        inside = (stats.turn >= low) & (stats.turn <= high if high is not None else True)
        if not np.any(inside):
            continue
        rows.append({
            "turns": f"{low}" if low == high else f"{low}-{high}" if high is not None else f"{low}+",
            "calls": int(np.count_nonzero(inside)),
            "history_tokens": round(float(np.mean(stats.reusable[inside] - stats.prefix[inside]))),
            "input_tokens": round(float(np.mean(stats.total[inside]))),
        })
    return rows


def _gap_evidence(stats: ConversationStats) -> dict[str, object]:
    linked = stats.gap[(stats.turn >= 1) & ~np.isnan(stats.gap)]
    out: dict[str, object] = {"linked_calls": len(linked)}
    if len(linked):
        out["gap_seconds"] = {q: round(float(np.quantile(linked, p)), 1)
                              for q, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))}
        for ttl, seconds in TTL_SECONDS.items():
            within = int(np.count_nonzero(linked < seconds))
            out[f"within_{ttl}"] = {"share": round(within / len(linked), 4), "ci95": _wilson(within, len(linked))}
    return out


def _pairs(prefix_ttl: str, prefix_relative: Mapping[str, float] | None) -> list[tuple[str, str]]:
    """(shared-prefix TTL, conversation TTL) pairs to compare, the shared-prefix decision's own TTL first.

    The API wants every 1h breakpoint before any 5m one, so a 1h conversation cannot follow a 5m shared prefix;
    moving that prefix to 1h as well is a candidate (a prefix many calls share costs nearly the same at 1h).
    """
    prefixes = [prefix_ttl]
    if prefix_ttl == "5m" and prefix_relative is not None and "1h" in prefix_relative:
        prefixes.append("1h")
    return [(p, c) for p in prefixes for c in TTLS if not (p == "5m" and c == "1h") and (p == prefix_ttl or c == "1h")]


def decide_conversation_cache(stats: ConversationStats | None, model: str, prefix_ttl: str = "none",
                              prefix_relative: Mapping[str, float] | None = None,
                              task_calls: int | None = None) -> ConversationDecision:
    """The conversation TTL for a task that will run on `model`, chosen with its shared-prefix TTL.

    `prefix_ttl` is the shared-prefix decision (`_caching`); `prefix_relative` its expected relative cost per TTL
    (None: the prefix is not cached on its own). The decision may move a 5m shared prefix to 1h when a 1h
    conversation pays for both (`prefix_ttl` of the decision). `task_calls`: all calls of the task, when some lack
    conversation keys (the saving is then per call of the task).
    """
    info = resolve(model)
    if info is None:
        return ConversationDecision("none", f"unknown model {model!r}: no cache prices")
    if stats is None or not stats.calls:
        return ConversationDecision("none", "no conversation keys recorded for this task")
    continuing = stats.turn >= 1
    evidence: dict[str, object] = {
        "model": info.model,
        "cache_min_tokens": info.cache_min_tokens,
        "calls": stats.calls,
        "continuing_share": round(stats.continuing_share, 4),
        **_gap_evidence(stats),
    }
    if stats.history_tokens:
        evidence["observed_history_hit_rate"] = round(stats.history_read / stats.history_tokens, 4)
    if not stats.continuing or not np.any(continuing):
        return ConversationDecision("none", "no call continues a conversation", 0.0, evidence)
    reusable = stats.reusable[continuing]
    history = reusable - stats.prefix[continuing]
    evidence["history_tokens_mean"] = round(float(np.mean(history)))
    evidence["reusable_below_minimum_share"] = round(float(np.mean(reusable < info.cache_min_tokens)), 4)
    evidence["history_by_turn"] = history_by_turn(stats)

    def relative(ttl: str) -> float:
        return prefix_relative.get(ttl, 1.0) if prefix_relative is not None and ttl != "none" else 1.0

    price = info.input * _PER_MILLION
    coverage = stats.calls / task_calls if task_calls else 1.0
    base = _relative_costs(stats, info, "none", prefix_ttl, relative(prefix_ttl))
    costs, savings = {}, {}
    for pair in _pairs(prefix_ttl, prefix_relative):
        per_call = _relative_costs(stats, info, pair[1], pair[0], relative(pair[0]))
        diff = (base - per_call) * price * coverage
        se = float(np.std(diff, ddof=1)) / math.sqrt(len(diff)) if len(diff) > 1 else float("inf")
        costs[pair] = float(np.mean(per_call)) * price
        savings[pair] = (float(np.mean(diff)), se)
    label = {pair: pair[1] if pair[0] == prefix_ttl else f"{pair[1]} (shared prefix {pair[0]})" for pair in costs}
    evidence["expected_input_cost_per_call"] = {label[pair]: round(cost, 8) for pair, cost in costs.items()}
    evidence["saving_per_call_ci95"] = {
        label[pair]: [round(mean - _Z95 * se, 8), round(mean + _Z95 * se, 8)]
        for pair, (mean, se) in savings.items() if pair[1] != "none"
    }
    best = max((pair for pair in savings if pair[1] != "none"), key=lambda pair: savings[pair][0])
    mean, se = savings[best]
    hit = hit_probability(stats, info, best[1])[continuing]
    if history.sum() > 0:
        evidence["predicted_history_hit_rate"] = {best[1]: round(float(np.sum(hit * history) / history.sum()), 4)}
    if mean - _Z95 * se <= 0:
        reason = (f"conversation caching not shown to pay: {label[best]} would save {mean * 1000:.4f} $ per 1k "
                  f"calls, 95% interval down to {(mean - _Z95 * se) * 1000:.4f}")
        return ConversationDecision("none", reason, 0.0, evidence)
    share = costs[best] / costs[(prefix_ttl, "none")] if costs[(prefix_ttl, "none")] else 1.0
    reason = (f"{label[best]} conversation caching cuts the expected input cost to {share:.0%} "
              f"({stats.continuing_share:.0%} of calls continue a conversation)")
    return ConversationDecision(best[1], reason, mean, evidence, best[0])
