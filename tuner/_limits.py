"""Rate-limit decisions per model: the limits a client-side limiter should enforce, and whether oversized max_tokens
waste the output-token limit, from what the API said (rate-limit headers, 429s, 529s, retries) and how long calls
took.

- Per-minute limits come from the `anthropic-ratelimit-*-limit` headers (the account's own figures, exact), paced at
  `share` of them. Without headers, the requests limit is inferred only once the data shows it was reached (429s):
  the busiest minute with no 429 is a lower bound on it; unknown stays unknown.
- Concurrency is Little's law: the paced rate times an upper confidence bound on a high quantile of service time
  (duration less admission wait: the time the API held a call), so the cap does not throttle below the rate when
  calls run long. Service time excludes the limiter's own waits, so re-tuning on limited traffic gives the same
  figure; header limits are as visible under a limiter as without one.
- A model whose calls saw no 429/529, no retry and plenty of headroom gets no limit: far from the limits a limiter
  can only add waiting.
- Output tokens are charged at `max_tokens` when a call is admitted: when calls use a small share of what they
  reserve and the output limit ran low, the cap (not the traffic) is what limits throughput.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from otel_claude.catalog import resolve
from otel_claude.policy import Limit, limit_id
from tuner._limits_input import ADMISSION_TIMEOUT, OK, OVERLOADED, RATE_LIMITED, LimitRows

__all__ = ["LimitDecision", "LimitOptions", "decide_limits", "policy_limits"]

_KINDS = ("requests", "input_tokens", "output_tokens")
_MINUTE_NS = 60_000_000_000


@dataclass(frozen=True)
class LimitOptions:
    share: float = 0.98  # of the account's limit, paced by the client
    latency_quantile: float = 0.9
    confidence: float = 0.95
    min_calls: int = 30  # successful calls needed to bound service time
    low_headroom: float = 0.1  # remaining below this share of the largest remaining seen counts as running low
    waste_share: float = 0.5  # unused share of reserved output tokens worth flagging


@dataclass(frozen=True)
class LimitDecision:
    model: str
    calls: int
    limit: Limit | None  # the policy entry, None when no limit is called for (or possible)
    reason: str
    evidence: dict[str, Any]
    # (minute from the first call, calls, 429s, 529s, retried calls), for the report
    timeline: tuple[tuple[int, int, int, int, int], ...]
    waste: dict[str, Any] | None  # output-token headroom reserved by max_tokens and not used, when flagged


def quantile_upper_bound(values: np.ndarray, q: float, confidence: float) -> float:
    """A distribution-free upper confidence bound on the q-quantile: the order statistic x_(k) with
    P(Binomial(n, q) < k) >= confidence (normal approximation with continuity correction)."""
    ordered = np.sort(values)
    n = len(ordered)
    z = NormalDist().inv_cdf(confidence)
    k = math.ceil(n * q + z * math.sqrt(n * q * (1 - q)) + 0.5)
    return float(ordered[min(max(k, 1), n) - 1])


def _header_limits(rows: LimitRows, sel: np.ndarray) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for kind, name in enumerate(_KINDS):
        values = rows.limit[sel, kind]
        have = values > 0
        if not have.any():
            continue
        ends = rows.end_ns[sel][have]
        found[name] = {"latest": int(values[have][np.argmax(ends)]), "distinct": sorted({int(v) for v in values[have]}),
                       "responses": int(have.sum())}
    return found


def _headroom(rows: LimitRows, sel: np.ndarray) -> dict[str, dict[str, float]]:
    """Remaining capacity as a share of the largest `remaining` seen: the bucket may hold less than the per-minute
    figure (limits enforced over shorter intervals), and the largest reading is what it was seen to hold."""
    found = {}
    for kind, name in enumerate(_KINDS):
        remaining = rows.remaining[sel, kind]
        remaining = remaining[remaining >= 0]
        if len(remaining) and remaining.max() > 0:
            ratio = remaining / remaining.max()
            found[name] = {"min": round(float(ratio.min()), 4), "p05": round(float(np.quantile(ratio, 0.05)), 4),
                           "largest_remaining": int(remaining.max())}
    return found


def _binding_at_429(rows: LimitRows, sel: np.ndarray) -> dict[str, int]:
    """Which limit had the least headroom on the calls that ended in a 429, counted per limit."""
    limited = sel & (rows.error == RATE_LIMITED)
    remaining = rows.remaining[limited]
    largest = np.maximum(rows.remaining[sel].max(axis=0, initial=0), 1)
    ratio = np.where(remaining >= 0, remaining / largest, np.inf)
    known = np.isfinite(ratio).any(axis=1)
    counts = np.bincount(np.argmin(ratio[known], axis=1), minlength=3) if known.any() else np.zeros(3, int)
    return {name: int(counts[kind]) for kind, name in enumerate(_KINDS) if counts[kind]}


def _busiest_clean_minute(rows: LimitRows, sel: np.ndarray) -> int | None:
    """Most calls started in any 60 s window in which no call that started got a 429; None under a minute of data."""
    starts = rows.start_ns[sel]
    order = np.argsort(starts, kind="stable")
    starts = starts[order]
    if len(starts) == 0 or starts[-1] - starts[0] < _MINUTE_NS:
        return None
    limited = np.concatenate(([0], np.cumsum(rows.error[sel][order] == RATE_LIMITED)))
    ends = np.searchsorted(starts, starts + _MINUTE_NS, side="left")
    first = np.arange(len(starts))
    clean = limited[ends] - limited[first] == 0
    full = starts + _MINUTE_NS <= starts[-1]  # windows that lie inside the data
    counts = (ends - first)[clean & full]
    return int(counts.max()) if len(counts) else None


def _in_flight_at(rows: LimitRows, sel: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Calls the API held at each moment of `at` (a call is held from its admission to its end)."""
    starts = np.sort(rows.start_ns[sel] + (rows.wait[sel] * 1e9).astype(np.int64))
    ends = np.sort(rows.end_ns[sel])
    return np.searchsorted(starts, at, side="right") - np.searchsorted(ends, at, side="right")


def _timeline(rows: LimitRows, sel: np.ndarray, origin: int) -> tuple[tuple[int, int, int, int, int], ...]:
    minute = ((rows.start_ns[sel] - origin) // _MINUTE_NS).astype(np.int64)
    if len(minute) == 0:
        return ()
    size = int(minute.max()) + 1
    error, retried = rows.error[sel], rows.retries[sel] > 0
    columns = [np.bincount(minute, weights=w, minlength=size).astype(int)
               for w in (None, error == RATE_LIMITED, error == OVERLOADED, retried)]
    return tuple((m, *(int(c[m]) for c in columns)) for m in range(size) if columns[0][m])  # type: ignore[misc]


def _waste(rows: LimitRows, sel: np.ndarray, headers: dict[str, Any], headroom: dict[str, Any],
           binding: dict[str, int], options: LimitOptions) -> dict[str, Any] | None:
    ok = sel & (rows.error == OK) & (rows.output >= 0) & (rows.max_tokens > 0)
    if ok.sum() < options.min_calls:
        return None
    reserved, used = rows.max_tokens[ok], rows.output[ok]
    share = 1.0 - float(used.sum()) / float(reserved.sum())
    low = headroom.get("output_tokens", {}).get("min", 1.0) < options.low_headroom
    if share < options.waste_share or not (low or binding.get("output_tokens")):
        return None
    p99 = int(np.quantile(used, 0.99))
    found: dict[str, Any] = {
        "unused_share_of_reserved": round(share, 4),
        "mean_max_tokens": round(float(reserved.mean()), 1),
        "mean_output_tokens": round(float(used.mean()), 1),
        "p99_output_tokens": p99,
        "output_headroom_min": headroom.get("output_tokens", {}).get("min"),
        "calls_ending_429_on_output_limit": binding.get("output_tokens", 0),
    }
    limit = headers.get("output_tokens", {}).get("latest")
    if limit:
        # Admission charges max_tokens: a full bucket admits this many calls at once, refilling per minute.
        found["calls_admitted_per_bucket_at_mean_max_tokens"] = round(limit / float(reserved.mean()), 1)
        found["calls_admitted_per_bucket_at_p99_output"] = round(limit / max(p99, 1), 1)
    return found


def _decide_model(rows: LimitRows, model: str, sel: np.ndarray, origin: int, options: LimitOptions) -> LimitDecision:
    calls = int(sel.sum())
    error, retries = rows.error[sel], rows.retries[sel]
    counts = {
        "calls": calls,
        "rate_limited": int((error == RATE_LIMITED).sum()),
        "overloaded": int((error == OVERLOADED).sum()),
        "retried_calls": int((retries > 0).sum()),
        "retries": int(retries[retries > 0].sum()),
        "admission_timeouts": int((error == ADMISSION_TIMEOUT).sum()),
        "waited_for_admission": int((rows.wait[sel] > 0).sum()),
    }
    headers = _header_limits(rows, sel)
    headroom = _headroom(rows, sel)
    binding = _binding_at_429(rows, sel)
    timeline = _timeline(rows, sel, origin)
    waste = _waste(rows, sel, headers, headroom, binding, options)
    evidence: dict[str, Any] = {**counts, "header_limits": headers, "headroom": headroom}
    if binding:
        evidence["binding_limit_at_429"] = binding
    if timeline:
        peak = max(timeline, key=lambda t: (t[1], t[2]))
        evidence["busiest_minute"] = {"calls": peak[1], "rate_limited": peak[2], "overloaded": peak[3]}
    if waste:
        evidence["max_tokens_waste"] = waste
    low = [name for name, h in headroom.items() if h["min"] < options.low_headroom]
    pressure = (counts["rate_limited"] + counts["overloaded"] + counts["retried_calls"]
                + counts["admission_timeouts"] + counts["waited_for_admission"]) > 0 or bool(low)
    if not pressure:
        reason = ("far from the limits: no 429, 529 or retry" +
                  (f", headroom never below {options.low_headroom:.0%}" if headroom else ", no rate-limit headers"))
        return LimitDecision(model, calls, None, reason, evidence, timeline, waste)
    if resolve(model) is None:
        return LimitDecision(model, calls, None, "model not in the catalog: a policy cannot name it", evidence,
                             timeline, waste)

    per_minute: dict[str, int] = {}
    sources: dict[str, str] = {}
    for name, found in headers.items():
        per_minute[name] = max(1, int(found["latest"] * options.share))
        sources[name] = f"header {found['latest']}/min x {options.share:g}"
    if "requests" not in per_minute and counts["rate_limited"]:
        clean = _busiest_clean_minute(rows, sel)
        if clean:
            per_minute["requests"] = clean
            sources["requests"] = "inferred: most calls in a minute without a 429 (a lower bound on the limit)"
    evidence["per_minute_source"] = sources

    concurrency = None
    ok = (error == OK) & (retries <= 0)
    service = rows.service_seconds()[sel][ok]
    service = service[service >= 0]
    if "requests" in per_minute and len(service) >= options.min_calls:
        bound = quantile_upper_bound(service, options.latency_quantile, options.confidence)
        concurrency = max(1, math.ceil(per_minute["requests"] / 60.0 * bound))
        evidence["service_time"] = {
            "quantile": options.latency_quantile,
            "estimate_s": round(float(np.quantile(service, options.latency_quantile)), 4),
            "upper_bound_s": round(bound, 4), "confidence": options.confidence, "calls": len(service),
        }
        sizing = (f"at most {concurrency} in flight (p{options.latency_quantile * 100:.0f} service time <= "
                  f"{bound:.2f} s at {options.confidence:.0%} confidence x {per_minute['requests'] / 60:.2f} calls/s)")
    elif counts["rate_limited"]:
        limited = sel & (rows.error == RATE_LIMITED)
        at = _in_flight_at(rows, sel, rows.start_ns[limited])
        concurrency = max(1, int(np.median(at) // 2))
        evidence["in_flight_at_429"] = {"median": float(np.median(at)), "calls": int(limited.sum())}
        sizing = (f"start at {concurrency} in flight (half the median {float(np.median(at)):g} in flight when 429s "
                  "began: a heuristic start, the adaptive limiter moves it)")
    else:
        sizing = "no concurrency bound (no rate known to size it from); adaptive"

    limit = Limit(
        task="*",
        models=(resolve(model).model,),  # type: ignore[union-attr]
        id=limit_id("*", (resolve(model).model,)),  # type: ignore[union-attr]
        concurrency=concurrency,
        requests_per_minute=per_minute.get("requests"),
        input_tokens_per_minute=per_minute.get("input_tokens"),
        output_tokens_per_minute=per_minute.get("output_tokens"),
        evidence=evidence,
    )
    seen = [f"{counts['rate_limited']} 429s", f"{counts['overloaded']} 529s",
            f"{counts['retried_calls']} retried calls"]
    if low:
        seen.append(f"headroom below {options.low_headroom:.0%} on {', '.join(low)}")
    paced = ", ".join(f"{name} {value}/min" for name, value in per_minute.items()) or "no per-minute limit known"
    reason = f"{calls} calls with {', '.join(seen)}; pace {paced}; {sizing}"
    if waste:
        reason += (f"; max_tokens reserves {waste['mean_max_tokens']:g} output tokens per call for "
                   f"{waste['mean_output_tokens']:g} used ({waste['unused_share_of_reserved']:.0%} of the output "
                   "limit's admissions wasted): lower max_tokens")
    return LimitDecision(model, calls, limit, reason, evidence, timeline, waste)


def decide_limits(rows: LimitRows, options: LimitOptions | None = None) -> list[LimitDecision]:
    """One decision per model (aliases and dated snapshots together, as the API counts them), by model name."""
    options = options or LimitOptions()
    if len(rows) == 0:
        return []
    names = [info.model if (info := resolve(m)) is not None else m for m in rows.models]
    canonical = np.array([sorted(set(names)).index(name) for name in names], dtype=np.int64)[rows.model]
    origin = int(rows.start_ns.min())
    return [_decide_model(rows, name, canonical == index, origin, options)
            for index, name in enumerate(sorted(set(names)))]


def policy_limits(decisions: list[LimitDecision]) -> tuple[Limit, ...]:
    return tuple(d.limit for d in decisions if d.limit is not None)
