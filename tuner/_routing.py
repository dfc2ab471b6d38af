"""Routing: the cheapest model whose quality is provably within a margin of the best observed on a task.

Traces only show the outcome of the model that was called, so a model is judged on a task only from its own
scored calls there. A candidate is accepted when the lower confidence bound of (its quality - the best's quality)
is above -margin; a cheaper candidate without enough scored calls gets a bounded exploration share instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from otel_claude.catalog import Usage, cost_usd, resolve
from tuner._dataset import ModelStats, in_range, restrict, size_edges

_Z = 1.96  # two-sided 95% normal interval


@dataclass(frozen=True)
class RoutingOptions:
    quality_margin: float = 0.02
    min_samples: int = 30
    max_ttft_p95: float | None = None
    max_duration_p95: float | None = None
    explore_share: float = 0.05
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True)
class RouteDecision:
    current: str
    model: str
    reason: str
    explore_model: str | None = None
    explore_share: float | None = None
    evidence: dict[str, object] = field(default_factory=dict)
    evidenced: bool = False  # the choice rests on scored calls, not on a lack of them

    @property
    def changed(self) -> bool:
        return self.model != self.current


def current_model(stats: list[ModelStats]) -> ModelStats:
    """The model the task runs on today: most non-exploration calls (ties broken by name)."""
    return max(stats, key=lambda s: (s.calls - s.explore_calls, s.model))


def repriced_cost(template: ModelStats, model: str) -> float | None:
    """Cost per call of the task's observed token mix on another model's prices."""
    info = resolve(model)
    if info is None:
        return None
    usage = Usage(
        input_tokens=round(template.mean_input),
        output_tokens=round(template.mean_output),
        cache_read_tokens=round(template.mean_cache_read),
        cache_write_5m_tokens=round(template.mean_cache_write),
    )
    return cost_usd(info, usage)


def _cost(stats: ModelStats, template: ModelStats) -> float:
    observed = stats.cost_per_call
    if observed > 0:
        return observed
    return repriced_cost(template, stats.model) or 0.0


def _latency_problem(stats: ModelStats, options: RoutingOptions) -> str | None:
    if options.max_ttft_p95 is not None and stats.ttft_p95 is not None and stats.ttft_p95 > options.max_ttft_p95:
        return f"p95 TTFT {stats.ttft_p95:.2f}s above the limit {options.max_ttft_p95:.2f}s"
    if (
        options.max_duration_p95 is not None
        and stats.duration_p95 is not None
        and stats.duration_p95 > options.max_duration_p95
    ):
        return f"p95 duration {stats.duration_p95:.2f}s above the limit {options.max_duration_p95:.2f}s"
    return None


def _quality_row(stats: ModelStats, cost: float) -> dict[str, object]:
    q = stats.quality
    row: dict[str, object] = {"calls": stats.calls, "cost_per_call": round(cost, 8), "scored": q.n if q else 0}
    if q is not None and q.n > 1:
        row["quality"] = round(q.mean, 4)
        row["quality_ci95"] = [round(q.mean - _Z * q.se, 4), round(q.mean + _Z * q.se, 4)]
    if stats.ttft_p95 is not None:
        row["ttft_p95_s"] = round(stats.ttft_p95, 4)
    return row


def _close_enough(
    s: ModelStats, best: ModelStats, is_current: bool, options: RoutingOptions, per_model: dict[str, dict[str, object]]
) -> bool:
    """Within the margin of the best, with the burden of proof on change.

    Another model must be shown close (lower bound of the gap above -margin); the current model stays acceptable
    unless shown worse (upper bound below -margin), so sampling noise in the best's score cannot force a switch.
    """
    low, high = _gap_interval(s, best)
    per_model[s.model]["quality_gap_ci95"] = [round(low, 4), round(high, 4)]
    return (high if is_current else low) >= -options.quality_margin


def _gap_interval(s: ModelStats, reference: ModelStats) -> tuple[float, float]:
    """95% normal interval of s's mean score minus the reference's (both must have scores)."""
    q, r = s.quality, reference.quality
    assert q is not None and r is not None
    gap = q.mean - r.mean
    half = _Z * math.sqrt(q.se**2 + r.se**2)
    return gap - half, gap + half


def _acceptable(
    s: ModelStats,
    best: ModelStats,
    base: ModelStats,
    evidenced: list[ModelStats],
    options: RoutingOptions,
    per_model: dict[str, dict[str, object]],
) -> bool:
    """The current model: unless shown worse than the best. Any other: shown close to the best and to the current
    model, so a small sample whose mean came out on top by chance is not taken on its luck alone."""
    if s is base:
        return s is best or _close_enough(s, best, True, options, per_model)
    # Both judged (no short cut), the best last: the evidence then records the gap to the best, as for the current
    # model, or to the current model where this one is the best.
    references = [r for r in (base, best) if r is not s and any(r is e for e in evidenced)]
    return all([_close_enough(s, r, False, options, per_model) for r in references])


def _inconclusive(s: ModelStats, base: ModelStats, margin: float) -> bool:
    """The 95% interval of the gap to the current model contains -margin: neither shown close nor shown worse."""
    if s is base or s.quality is None or base.quality is None:
        return False
    low, high = _gap_interval(s, base)
    return low < -margin <= high


def decide_route(stats: list[ModelStats], options: RoutingOptions) -> RouteDecision:
    """Stats: every model observed on one task."""
    base = current_model(stats)
    by_model = {s.model: s for s in stats}
    costs = {s.model: _cost(s, base) for s in stats}
    per_model = {s.model: _quality_row(s, costs[s.model]) for s in stats}
    evidence: dict[str, object] = {"models": per_model, "quality_margin": options.quality_margin}
    rejected: dict[str, str] = {}
    evidenced = []
    for s in stats:
        problem = _latency_problem(s, options)
        if problem:
            rejected[s.model] = problem
        elif s.quality is not None and s.quality.n >= options.min_samples:
            evidenced.append(s)
    if rejected:
        evidence["rejected"] = rejected

    chosen, reason, judged = base, "", False
    if not evidenced:
        reason = f"insufficient evidence: no model has {options.min_samples} scored calls on this task"
    elif base not in evidenced and base.model not in rejected:
        reason = f"insufficient evidence: {base.model}, the current model, has fewer than {options.min_samples} scores"
    else:
        best = max(evidenced, key=lambda s: (s.quality.mean, s.model))  # type: ignore[union-attr]
        accepted = [s for s in evidenced if _acceptable(s, best, base, evidenced, options, per_model)]
        chosen = min(accepted, key=lambda s: (costs[s.model], s.model))
        judged = True
        if base.model in rejected and chosen is base:
            reason = f"keep {base.model}: no alternative meets the limits"
        elif chosen is base:
            reason = f"{base.model} is already the cheapest model within {options.quality_margin} of the best"
        else:
            reason = (
                f"{chosen.model} costs {costs[chosen.model] / costs[base.model]:.0%} of {base.model} per call and "
                f"its quality is within {options.quality_margin} of the best ({best.model}) at 95% confidence"
            )
    explore_model, share = _exploration(stats, by_model, chosen, costs, options, base)
    return RouteDecision(base.model, chosen.model, reason, explore_model, share, evidence, judged)


@dataclass(frozen=True)
class Segment:
    """An input-size range of a task with its own routing decision; `share` of the task's calls fall in it."""

    input_min: int
    input_max: int | None
    share: float
    route: RouteDecision


def decide_route_by_size(stats: list[ModelStats], options: RoutingOptions) -> tuple[Segment, ...]:
    """Routing per input-size bucket, only where every bucket has the evidence to decide and they disagree."""
    sizes = np.concatenate([s.sizes for s in stats])
    edges = size_edges(sizes).tolist()
    if not edges:
        return ()
    segments = []
    for low, high in zip([0, *edges], [*edges, None], strict=True):
        inside = [restrict(s, in_range(s.sizes, low, high)) for s in stats]
        # Exploration stays a task-level choice; here only the evidence inside the bucket counts.
        route = decide_route(inside, replace(options, candidates=()))
        if not route.evidenced:
            return ()
        share = float(np.count_nonzero(in_range(sizes, low, high)) / len(sizes))
        segments.append(Segment(low, high, round(share, 4), route))
    if len({segment.route.model for segment in segments}) < 2:
        return ()
    # Split only on a real difference: where the cheapest bucket choice is not taken, it must be shown worse
    # than the margin allows, not merely lack the power to be shown close (smaller buckets mean wider intervals).
    cheapest = min((s.route for s in segments), key=lambda r: _price(r, r.model)).model
    for segment in segments:
        if segment.route.model != cheapest:
            gap = segment.route.evidence["models"].get(cheapest, {}).get("quality_gap_ci95")  # type: ignore[union-attr]
            if gap is None or gap[1] >= -options.quality_margin:
                return ()
    return tuple(segments)


def _price(route: RouteDecision, model: str) -> float:
    row = route.evidence["models"][model]  # type: ignore[index]
    return float(row["cost_per_call"])


def samples_to_resolve(base: ModelStats, margin: float) -> int:
    """Scores a candidate needs for the 95% interval of its gap to the current model to be narrower than the margin.

    Half-width of a difference of two means with equal n and spread: z * sd * sqrt(2 / n) <= margin.
    """
    sd = base.quality.sd if base.quality is not None and base.quality.n > 1 else 0.5
    return math.ceil(2 * (_Z * max(sd, 0.05) / margin) ** 2)


def _exploration(
    stats: list[ModelStats],
    by_model: dict[str, ModelStats],
    chosen: ModelStats,
    costs: dict[str, float],
    options: RoutingOptions,
    base: ModelStats,
) -> tuple[str | None, float | None]:
    """The cheapest candidate cheaper than the choice that lacks evidence, and the share that gathers it."""
    if not any(s.quality is not None for s in stats):
        # Without feedback on this task, calls sent to a candidate would teach nothing about its quality.
        return None, None
    names = sorted({*options.candidates, *by_model})
    chosen_cost = costs[chosen.model]
    to_resolve = samples_to_resolve(base, options.quality_margin)
    lacking = []
    for name in names:
        if resolve(name) is None:
            continue
        s = by_model.get(name)
        scored = s.quality.n if s is not None and s.quality is not None else 0
        cost = costs[name] if s is not None else repriced_cost(base, name)
        # Past min_samples a candidate still lacks evidence while its interval straddles the margin: it is neither
        # shown close nor shown worse, and stopping there would leave the question open for good.
        unresolved = scored < options.min_samples or (
            s is not None and scored < to_resolve and _inconclusive(s, base, options.quality_margin)
        )
        if unresolved and cost is not None and cost < chosen_cost:
            lacking.append((cost, name, scored))
    if not lacking:
        return None, None
    _, name, scored = min(lacking)
    scored_calls = sum(s.quality.n for s in stats if s.quality is not None)
    needed = max(options.min_samples, to_resolve) - scored
    # The share of one more window like this one that collects the missing scores at this task's feedback rate.
    share = min(options.explore_share, max(needed / scored_calls, 0.01))
    return name, round(share, 3)
