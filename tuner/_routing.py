"""Routing: the cheapest model whose quality is shown, with anytime-valid confidence, to be within a margin of the
model the task's callers ask for; and how to get the evidence that is still missing.

Evidence per model pair comes from `_evidence` (paired shadow verdicts and user feedback, accumulated across
windows); costs from `_costs` (each model with its own best caching). The burden of proof is on change: a model
other than the one serving the task is taken only when the lower bound of its quality gap clears the margin; the
callers' own model needs no proof. While a task is routed (an earlier policy sends it to another model), a further
move must fit in what the route left of the margin: the route's own lower bound is subtracted, so losses against
the callers' model never add up beyond the margin. The tuner never spends more for quality: a pricier model is
taken only to undo a route whose quality has been shown to fall beyond the margin.

A cheaper model that is neither shown close nor shown worse gets an evaluation share: paired shadow calls sized to
the verdicts still missing, within the evaluation budget (a share of the task's own spend). Exploration (serving
the candidate's answers to users) stays available as an option for tasks with user feedback.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from otel_claude.catalog import resolve
from tuner._costs import CostEstimate
from tuner._dataset import ModelStats, in_range, restrict
from tuner._evidence import Gap, TaskEvidence, needed_pairs
from tuner._state import TaskMemory

__all__ = [
    "SIZE_EDGES",
    "RouteDecision",
    "RoutingOptions",
    "Segment",
    "current_model",
    "decide_route",
    "decide_route_by_size",
]

# Fixed input-size buckets (tokens): stable across windows, so per-bucket evidence means the same thing each time.
SIZE_EDGES = (500, 2000, 8000, 32000)
_MIN_SHARE = 0.01
_CACHE_MATTERS = 1.5  # a candidate whose uncached cost is this many times its cached cost: pairs come in runs
_RUN_HEADROOM = 0.8  # of the budget a run of pairs is planned to spend


@dataclass(frozen=True, kw_only=True)
class RoutingOptions:
    """Explicit, validated parameters of the routing decision (checked here, wherever they come from)."""

    quality_margin: float = 0.02
    alpha: float = 0.05
    min_samples: int = 30
    max_ttft_p95: float | None = None
    max_duration_p95: float | None = None
    evaluate_share: float = 0.2
    evaluation_budget: float = 0.05
    explore_share: float = 0.0
    candidates: tuple[str, ...] = ()
    # An LLM judge for pairs no cheaper grader settles (opt-in: it costs two calls of this model per such pair).
    judge_model: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.quality_margin < 1:
            problems.append(f"quality_margin must be in (0, 1), got {self.quality_margin}")
        if not 0 < self.alpha < 0.5:
            problems.append(f"alpha must be in (0, 0.5), got {self.alpha}")
        if self.min_samples < 1:
            problems.append(f"min_samples must be at least 1, got {self.min_samples}")
        for name in ("max_ttft_p95", "max_duration_p95"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                problems.append(f"{name} must be positive, got {value}")
        if not 0 <= self.evaluate_share <= 0.5:
            problems.append(f"evaluate_share must be in [0, 0.5], got {self.evaluate_share}")
        if not 0 < self.evaluation_budget <= 1:
            problems.append(f"evaluation_budget must be in (0, 1], got {self.evaluation_budget}")
        if not 0 <= self.explore_share <= 0.2:
            problems.append(f"explore_share must be in [0, 0.2], got {self.explore_share}")
        unknown = [name for name in (*self.candidates, *([self.judge_model] if self.judge_model else []))
                   if resolve(name) is None]
        if unknown:
            problems.append(f"unknown model(s): {', '.join(unknown)}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True, kw_only=True)
class RouteDecision:
    current: str  # the model serving the task now
    reference: str  # the model its callers ask for: quality is judged against it
    model: str  # the choice
    reason: str
    gaps: dict[str, Gap] = field(default_factory=dict)  # per other model: quality minus the serving model's
    slack: float = 0.0  # how much of the margin a move from the current model may use
    evaluate_model: str | None = None
    evaluate_share: float | None = None
    # Expected USD of a pair that misses the candidate's cache: what a process charges its first pairs before its
    # own have shown what they cost (otherwise a process that has just started prices pairs at nothing).
    evaluate_pair_cost: float | None = None
    needed: int | None = None  # about how many more paired verdicts settle the question
    explore_model: str | None = None
    explore_share: float | None = None
    rejected: dict[str, str] = field(default_factory=dict)  # model -> why it cannot be chosen
    evidenced: bool = False  # the choice rests on evidence (not on its absence)

    @property
    def changed(self) -> bool:
        return self.model != self.current

    def evidence(self, costs: dict[str, CostEstimate]) -> dict[str, object]:
        """What the policy records about this decision (rounded for people; the decision used unrounded values)."""
        models: dict[str, object] = {}
        for name, estimate in sorted(costs.items()):
            row: dict[str, object] = {"cost_per_call": round(estimate.per_call, 8), "cache_ttl": estimate.cache.ttl}
            if name in self.gaps:
                row.update(self.gaps[name].evidence())
            models[name] = row
        out: dict[str, object] = {"models": models, "quality_margin_left": round(self.slack, 4)}
        if self.rejected:
            out["rejected"] = dict(sorted(self.rejected.items()))
        if self.needed is not None:
            out["verdicts_needed"] = self.needed
        return out


def current_model(stats: list[ModelStats]) -> ModelStats:
    """The model the task runs on today: most application calls (ties broken by name)."""
    return max(stats, key=lambda s: (s.calls - s.explore_calls, s.model))


def _latency(stats: ModelStats | None, options: RoutingOptions) -> tuple[str | None, bool]:
    """(why the model fails a latency limit, whether it is shown to meet every limit set). A model whose latency was
    never measured fails nothing yet but cannot be chosen under a limit: evidence may still be gathered on it."""
    met = True
    for limit, value, what in ((options.max_ttft_p95, stats.ttft_p95 if stats else None, "TTFT"),
                               (options.max_duration_p95, stats.duration_p95 if stats else None, "duration")):
        if limit is None:
            continue
        if value is None:
            met = False
        elif value > limit:
            return f"p95 {what} {value:.2f}s above the limit {limit:.2f}s", False
    return None, met


def decide_route(
    stats: list[ModelStats],
    options: RoutingOptions,
    *,
    evidence: TaskEvidence,
    costs: dict[str, CostEstimate],
    memory: TaskMemory | None = None,
    window_calls: int | None = None,
) -> RouteDecision:
    """`stats`: every model observed on one task; `costs`: every model that could serve it (`_costs`);
    `window_calls`: the task's application calls in this window, the volume an evaluation share is sized to."""
    memory = memory or TaskMemory()
    base = current_model(stats)
    by_model = {s.model: s for s in stats}
    reference = base.requested_model or base.model
    margin = options.quality_margin
    # What a move from the serving model may still lose: all of the margin, less what an earlier route lost.
    slack = margin
    if base.model != reference and memory.route == base.model and memory.route_low is not None:
        slack = max(margin + min(memory.route_low, 0.0), 0.0)

    gaps = {name: evidence.gap(name, base.model) for name in costs if name != base.model}
    rejected: dict[str, str] = {}
    acceptable = [base.model]
    for name, gap in gaps.items():
        problem, met = _latency(by_model.get(name), options)
        if problem:
            rejected[name] = problem
        elif name in memory.rejected or gap.worse(slack):
            rejected[name] = f"quality shown more than {slack:.3g} below {base.model}"
        elif _judged(gap, options) and gap.within(slack) and met:
            acceptable.append(name)

    undo = None
    if base.model != reference and reference in costs:
        back = evidence.gap(base.model, reference)
        if back.worse(margin):
            # The route itself is now shown to lose more than the margin: go back to what the callers ask for.
            undo = reference
            acceptable = [reference]
    chosen = min(acceptable, key=lambda name: (costs[name].per_call if name in costs else math.inf, name))
    if undo is not None:
        chosen = undo

    decision = RouteDecision(current=base.model, reference=reference, model=chosen, reason="", gaps=gaps,
                             slack=slack, rejected=rejected, evidenced=chosen != base.model)
    decision = _plan_evidence(decision, costs, evidence, options, window_calls, base)
    return replace(decision, reason=_reason(decision, costs, options, window_calls))


def _judged(gap: Gap, options: RoutingOptions) -> bool:
    """Enough verdicts or scores to judge at all (the bounds are valid at any n; this guards against acting on a
    handful of calls whose conditions may not be typical)."""
    return gap.pairs + min(gap.scores) >= options.min_samples


def _plan_evidence(decision: RouteDecision, costs: dict[str, CostEstimate], evidence: TaskEvidence,
                   options: RoutingOptions, window_calls: int | None, base: ModelStats) -> RouteDecision:
    """The cheapest model cheaper than the choice that is neither shown close nor shown worse, and the shares that
    would settle it."""
    chosen_cost = costs[decision.model].per_call if decision.model in costs else math.inf
    open_question = [
        name for name, gap in decision.gaps.items()
        if name not in decision.rejected and name != decision.model and costs[name].per_call < chosen_cost
        and not (gap.within(decision.slack) and _judged(gap, options))
    ]
    if not open_question:
        return decision
    candidate = min(open_question, key=lambda name: (costs[name].per_call, name))
    gap = decision.gaps[candidate]
    needed = needed_pairs(gap, decision.slack, options.alpha) if gap.pairs else None
    share = evaluate_share = pair_cost = None
    if options.evaluate_share > 0 and window_calls:
        # A sampled call costs the candidate's copy, plus two judge calls when no grader settles its pair: stay
        # within the budget.
        copy = costs[candidate]
        judging = 0.0
        if options.judge_model is not None and options.judge_model in costs:
            judging = 2 * gap.unsettled_share * costs[options.judge_model].uncached_per_call
        per_pair = copy.per_call + judging
        pair_cost = float(f"{copy.uncached_per_call + judging:.4g}")
        budget_share = options.evaluation_budget * costs[decision.current].per_call / max(per_pair, 1e-12)
        if copy.uncached_per_call > _CACHE_MATTERS * copy.per_call:
            # The instrumentor admits pairs in runs that keep the candidate's prompt cache warm; a run lasts while
            # the budget keeps up with it, so a share that would spend the whole budget ends each run at the first
            # dearer pair (a judge call) and pays the cache write again.
            budget_share *= _RUN_HEADROOM
        wanted = needed / window_calls if needed is not None else options.evaluate_share
        evaluate_share = round(min(max(wanted, _MIN_SHARE), options.evaluate_share, budget_share), 4)
        if evaluate_share < _MIN_SHARE / 2:
            evaluate_share = None
    explore_model = None
    if options.explore_share > 0 and base.quality is not None and window_calls:
        scored = max(base.quality.n / max(base.calls, 1), 1e-9)
        wanted_scores = options.min_samples if needed is None else needed
        share = round(min(options.explore_share, max(wanted_scores / (window_calls * scored), _MIN_SHARE)), 4)
        explore_model = candidate
    return replace(decision, evaluate_model=candidate if evaluate_share else None, evaluate_share=evaluate_share,
                   evaluate_pair_cost=pair_cost if evaluate_share else None, needed=needed,
                   explore_model=explore_model, explore_share=share if explore_model else None)


def _reason(d: RouteDecision, costs: dict[str, CostEstimate], options: RoutingOptions,
            window_calls: int | None) -> str:
    """The actual reason for the choice, and what would change it."""
    if d.changed and d.model == d.reference and d.current != d.reference:
        return (f"back to {d.model}: the route to {d.current} is now shown to lose more than "
                f"{options.quality_margin} of quality")
    if d.changed:
        gap = d.gaps[d.model]
        ratio = costs[d.model].per_call / costs[d.current].per_call if costs[d.current].per_call else 0.0
        return (f"{d.model} costs {ratio:.0%} of {d.current} per call (each with its best caching) and its quality "
                f"is at most {-gap.low:.3f} below at {1 - options.alpha:.0%} confidence, anytime-valid "
                f"({gap.pairs} paired verdicts, {gap.scores[0]}/{gap.scores[1]} feedback scores); margin left "
                f"{d.slack:.3f}")
    cheaper = [n for n in costs if costs[n].per_call < costs[d.current].per_call and n != d.current]
    if not cheaper:
        return f"{d.current} is already the cheapest model for this task (each priced with its best caching)"
    if d.evaluate_model or d.explore_model:
        name = d.evaluate_model or d.explore_model
        gap = d.gaps[name]  # type: ignore[index]
        if not gap.known:
            state = "no evidence yet"
        elif gap.within(d.slack):
            state = (f"{gap.pairs} paired verdicts and {min(gap.scores)} feedback scores, fewer than the "
                     f"{options.min_samples} a model is judged on")
        else:
            state = f"quality gap bounds [{gap.low:.3f}, {gap.high:.3f}] still straddle -{d.slack:.3f}"
        plan = f"evaluating {name} on {d.evaluate_share:.1%} of calls" if d.evaluate_model else \
            f"exploring {name} on {d.explore_share:.1%} of calls"
        more = ""
        if d.needed is not None:
            more = f"; needs about {d.needed:,} more paired verdicts"
            rate = (d.evaluate_share or 0) * (window_calls or 0)
            if rate:
                more += f" (about {d.needed / rate:.1f} windows like this one)"
        return f"insufficient evidence for {name}, which would cost less: {state}; {plan}{more}"
    if all(n in d.rejected for n in cheaper):
        return f"every cheaper model is ruled out: {'; '.join(f'{n}: {d.rejected[n]}' for n in sorted(cheaper))}"
    return ("insufficient evidence for a cheaper model, and no evaluation is possible: enable paired evaluation "
            "(the policy's `evaluate` share) or give feedback with otel_claude.feedback()")


# -- by input size ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Segment:
    """An input-size range of a task with its own routing decision; `share` of the task's calls fall in it."""

    input_min: int
    input_max: int | None
    share: float
    route: RouteDecision


def _populated_edges(sizes: np.ndarray, least: int) -> list[int]:
    """The fixed edges that leave at least `least` calls in every bucket (sparse buckets merge with a neighbour)."""
    kept: list[int] = []
    for edge in SIZE_EDGES:
        low = kept[-1] if kept else 0
        if np.count_nonzero((sizes >= low) & (sizes < edge)) >= least and np.count_nonzero(sizes >= edge) >= least:
            kept.append(edge)
    return kept


def decide_route_by_size(
    stats: list[ModelStats], options: RoutingOptions, *, costs: dict[str, CostEstimate],
    evidence_for: Callable[[str], TaskEvidence] | None = None,
) -> tuple[Segment, ...]:
    """Routing per fixed input-size bucket from the feedback scores inside it, only where every bucket has the
    evidence to decide and they disagree; a bucket moves off the cheapest choice only where that choice is shown
    worse than the margin allows there (smaller buckets have wider bounds: a lack of proof is no reason to split).

    `evidence_for(bucket)` gives each bucket's evidence carried from earlier windows (buckets are fixed ranges, so a
    bucket's key means the same every time); without it, only this window's scores count.
    """
    sizes = np.concatenate([s.sizes for s in stats]) if stats else np.empty(0, np.int64)
    if not len(sizes):
        return ()
    # A bucket holds a fifth of the calls at least: fewer would rarely have the evidence to decide on its own.
    edges = _populated_edges(sizes, max(options.min_samples, len(sizes) // 5))
    if not edges:
        return ()
    segments = []
    for low, high in zip([0, *edges], [*edges, None], strict=True):
        inside = [restrict(s, in_range(s.sizes, low, high)) for s in stats]
        inside = [s for s in inside if len(s.sizes)]
        key = f"{low}-{high if high is not None else 'up'}"
        evidence = evidence_for(key) if evidence_for is not None else TaskEvidence(options.alpha)
        for s in inside:
            scored = ~np.isnan(s.scores)
            if np.any(scored):
                evidence.add_scores(s.model, s.times[scored], s.scores[scored])
        route = decide_route(inside, replace(options, evaluate_share=0.0, explore_share=0.0), evidence=evidence,
                             costs={n: c for n, c in costs.items() if any(s.model == n for s in inside)})
        share = float(np.count_nonzero(in_range(sizes, low, high)) / len(sizes))
        segments.append(Segment(input_min=low, input_max=high, share=round(share, 4), route=route))
    # Every bucket has absorbed this window's scores before any is judged: what enters a bucket's evidence must
    # not depend on what another bucket's evidence says.
    if any(not s.route.evidenced and not s.route.rejected for s in segments):
        return ()
    if len({segment.route.model for segment in segments}) < 2:
        return ()
    cheapest = min((s.route.model for s in segments), key=lambda name: costs[name].per_call)
    for segment in segments:
        if segment.route.model != cheapest:
            gap = segment.route.gaps.get(cheapest)
            if gap is None or not gap.worse(segment.route.slack):
                return ()
    return tuple(segments)
