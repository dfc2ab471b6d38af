"""From a dataset to decisions per task and a policy: routing first, then the cap and caching for the chosen model."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone

from otel_claude.policy import CacheAction, Conditions, Explore, Limit, Policy, Rule, dump_policy
from tuner._caching import CacheDecision, decide_cache
from tuner._dataset import Dataset, ModelStats, in_range, restrict
from tuner._max_tokens import CapDecision, decide_max_tokens
from tuner._records import UNLABELLED, UNTRACKED
from tuner._routing import (
    RouteDecision,
    RoutingOptions,
    Segment,
    current_model,
    decide_route,
    decide_route_by_size,
    repriced_cost,
)
from tuner._version import TUNER_VERSION


@dataclass(frozen=True)
class TuneOptions:
    truncation_target: float = 0.01
    routing: RoutingOptions = field(default_factory=RoutingOptions)

    def as_metadata(self) -> dict[str, object]:
        routing = asdict(self.routing)
        routing["candidates"] = list(self.routing.candidates)
        return {"truncation_target": self.truncation_target, **routing}


@dataclass(frozen=True)
class SegmentDecision:
    """Routing and cap for one input-size range of a task (conditional rules)."""

    segment: Segment
    cap: CapDecision


@dataclass(frozen=True)
class TaskDecision:
    task: str
    calls: int
    route: RouteDecision
    cap: CapDecision
    cache: CacheDecision
    cost_before: float
    cost_after: float
    segments: tuple[SegmentDecision, ...] = ()
    explore_cap: int | None = None  # the exploration candidate's own cap, where its lengths support one
    # Callers of one task on different models, kept as they are: each model's own cap where it differs.
    model_caps: tuple[tuple[str, CapDecision], ...] = ()
    # The model the task's callers ask for. It differs from route.current when an earlier policy routes the task:
    # keeping today's model then still needs a rule that routes, or the callers' model would come back.
    caller_model: str | None = None

    @property
    def asked_for(self) -> str:
        """The model the callers ask for (the current model when the data does not say)."""
        return self.caller_model or self.route.current

    def routes_to(self, model: str) -> str | None:
        """The rule's `model` for sending this task to `model`: None when that is what the callers ask for."""
        return None if model == self.asked_for else model

    @property
    def saving_per_call(self) -> float:
        return self.cost_before - self.cost_after


def _already_caching(dataset: Dataset, task: str) -> bool:
    return any(p.cache_read_tokens > 0 for p in dataset.prefixes if p.task == task)


def decide_task(dataset: Dataset, task: str, options: TuneOptions) -> TaskDecision:
    stats = dataset.for_task(task)
    base = current_model(stats)
    # Every model seen anywhere is a candidate for every task: evidence on one task may be missing on another.
    candidates = tuple(sorted({*options.routing.candidates, *(m.model for m in dataset.models)}))
    route = decide_route(stats, replace(options.routing, candidates=candidates))
    by_model = {s.model: s for s in stats}
    target: ModelStats = by_model[route.model]
    # The target model's own lengths decide its cap; a model never seen on this task would have none.
    cap = decide_max_tokens(target, options.truncation_target)
    segments = tuple(
        SegmentDecision(
            segment,
            decide_max_tokens(
                restrict(chosen, in_range(chosen.sizes, segment.input_min, segment.input_max)),
                options.truncation_target,
            ),
        )
        for segment in decide_route_by_size(stats, options.routing)
        for chosen in [by_model[segment.route.model]]
    )
    prefixes = [p for p in dataset.prefixes if p.task == task]
    cache = decide_cache(prefixes, route.model)
    if cache.ttl != "none" and _already_caching(dataset, task):
        # Observed costs already include today's cache reads: do not count those savings twice.
        cache = replace(cache, saving_per_call=0.0, reason=cache.reason + " (already caching: costs include it)")
    before = base.cost_per_call or (repriced_cost(base, base.model) or 0.0)
    if segments:
        model_cost = sum(d.segment.share * by_model[d.segment.route.model].cost_per_call for d in segments)
    else:
        model_cost = target.cost_per_call or (repriced_cost(base, target.model) or 0.0)
    calls = sum(s.calls for s in stats)
    explore_cap = None
    if route.explore_model in by_model:
        # Per model where they differ: the candidate's lengths (e.g. from earlier exploration) give it its own cap.
        own = decide_max_tokens(by_model[route.explore_model], options.truncation_target).max_tokens
        explore_cap = own if own is not None and own != cap.max_tokens else None
    model_caps: tuple[tuple[str, CapDecision], ...] = ()
    # (Not while a policy routes the task: these rules match on the model callers ask for, which is then the same
    # for the calls on every model.)
    if not route.changed and not segments and not cap.buckets and base.requested_model == base.model:
        others = (s for s in stats if s.model not in (route.model, route.explore_model) and s.calls > s.explore_calls)
        decided = ((s.model, decide_max_tokens(s, options.truncation_target)) for s in others)
        model_caps = tuple((m, c) for m, c in decided if c.max_tokens is not None and c.max_tokens != cap.max_tokens)
    saving_after = max(model_cost - cache.saving_per_call, 0.0)
    return TaskDecision(
        task, calls, route, cap, cache, before, saving_after, segments, explore_cap, model_caps, base.requested_model
    )


def decide_all(dataset: Dataset, options: TuneOptions) -> list[TaskDecision]:
    return [decide_task(dataset, task, options) for task in dataset.tasks() if task not in (UNLABELLED, UNTRACKED)]


def _evidence(d: TaskDecision) -> dict[str, object]:
    return {
        "calls": d.calls,
        "cost_per_call_before": round(d.cost_before, 8),
        "cost_per_call_after": round(d.cost_after, 8),
        "saving_per_1k_calls": round(d.saving_per_call * 1000, 6),
        "saving_at_observed_volume": round(d.saving_per_call * d.calls, 6),
        "routing": {"reason": d.route.reason, **d.route.evidence,
                    **({"callers_ask_for": d.asked_for} if d.asked_for != d.route.current else {})},
        "max_tokens": {"reason": d.cap.reason, **d.cap.evidence},
        "cache": {"reason": d.cache.reason, **d.cache.evidence},
    }


def rules_for(d: TaskDecision) -> list[Rule]:
    rule = Rule(
        task=d.task,
        model=d.routes_to(d.route.model),
        max_tokens=d.cap.max_tokens,
        max_tokens_mode=d.cap.mode,
        cache=CacheAction(ttl=d.cache.ttl) if d.cache.ttl != "none" else None,
        explore=Explore(d.route.explore_model, d.route.explore_share, d.explore_cap)
        if d.route.explore_model and d.route.explore_share
        else None,
        evidence=_evidence(d),
    )
    if d.segments:
        # Routing differs by input size: one rule per size range, each with its model and that model's cap there.
        return [
            replace(
                rule,
                when=Conditions(input_tokens_min=s.segment.input_min or None, input_tokens_max=s.segment.input_max),
                model=d.routes_to(s.segment.route.model),
                max_tokens=s.cap.max_tokens,
                max_tokens_mode=s.cap.mode,
                evidence={
                    **rule.evidence,
                    "segment": {
                        "share": s.segment.share,
                        "routing": {"reason": s.segment.route.reason, **s.segment.route.evidence},
                        "max_tokens": {"reason": s.cap.reason, **s.cap.evidence},
                    },
                },
            )
            for s in d.segments
        ]
    if not d.cap.buckets:
        # First match wins: the per-model rules (on the caller's requested model) go before the task's own.
        per_model = [
            replace(
                rule,
                when=Conditions(models=(model,)),
                max_tokens=cap.max_tokens,
                max_tokens_mode=cap.mode,
                explore=None,
                evidence={**rule.evidence, "max_tokens": {"reason": cap.reason, **cap.evidence}, "for_model": model},
            )
            for model, cap in d.model_caps
        ]
        return [*per_model, rule]
    # First match wins, so the buckets are consecutive input-size ranges covering every size.
    return [
        replace(
            rule,
            when=Conditions(input_tokens_min=b.input_min or None, input_tokens_max=b.input_max),
            max_tokens=b.max_tokens,
            max_tokens_mode=d.cap.mode_for(b.max_tokens),
        )
        for b in d.cap.buckets
    ]


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# Enough for any real service's task list; beyond it the policy (every rule carries its evidence) would pass the
# schema's size guard, and a service would scan thousands of rules per call. The report still covers every task.
MAX_RULES = 500


def _acts(rule: Rule) -> bool:
    return any(x is not None for x in (rule.model, rule.max_tokens, rule.cache, rule.explore))


def build_policy(dataset: Dataset, decisions: list[TaskDecision], options: TuneOptions,
                 limits: tuple[Limit, ...] = ()) -> Policy:
    """The policy for the decisions; `limits`: the rate-limit entries (tuner._limits), written as they are."""
    # A task whose decision changes nothing gets no rule: its reasons are in the report, not in the policy.
    acting = [d for d in decisions if any(_acts(rule) for rule in rules_for(d))]
    kept_tasks: set[str] = set()
    count = 0
    for d in sorted(acting, key=lambda d: (-d.saving_per_call * d.calls, d.task)):  # largest savings first
        count += len(rules_for(d))
        if count > MAX_RULES:
            break
        kept_tasks.add(d.task)
    rules = tuple(rule for d in decisions if d.task in kept_tasks for rule in rules_for(d))
    metadata: dict[str, object] = {
        "tuner_version": TUNER_VERSION,
        "span_count": dataset.spans,
        "call_count": dataset.calls,
        "feedback_count": dataset.feedback,
        "data_window": {"start": _iso(dataset.start_ns), "end": _iso(dataset.end_ns)},
        "options": options.as_metadata(),
    }
    if len(acting) > len(kept_tasks):
        metadata["tasks_without_rule_over_limit"] = len(acting) - len(kept_tasks)
    draft = Policy(version="draft", rules=rules, metadata=metadata, limits=limits)
    # The version names the content: same input and options give the same version, any change a new one.
    digest = hashlib.sha256(dump_policy(draft).encode()).hexdigest()[:8]
    day = (_iso(dataset.end_ns) or "00000000")[:10].replace("-", "")
    return replace(draft, version=f"{day}-{digest}")
