"""From a dataset to decisions per task and a policy: routing first, then the cap and caching for the chosen model."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone

from otel_claude._policy_schema import CacheAction, Conditions, Explore, Policy, Rule, dump_policy
from tuner._caching import CacheDecision, decide_cache
from tuner._dataset import Dataset, ModelStats
from tuner._max_tokens import CapDecision, decide_max_tokens
from tuner._records import UNLABELLED
from tuner._routing import RouteDecision, RoutingOptions, current_model, decide_route, repriced_cost
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
class TaskDecision:
    task: str
    calls: int
    route: RouteDecision
    cap: CapDecision
    cache: CacheDecision
    cost_before: float
    cost_after: float

    @property
    def saving_per_call(self) -> float:
        return self.cost_before - self.cost_after

    @property
    def changed(self) -> bool:
        return (
            self.route.changed or self.cap.changed or self.cache.ttl != "none" or self.route.explore_model is not None
        )


def _already_caching(dataset: Dataset, task: str) -> bool:
    return any(p.cache_read_tokens > 0 for p in dataset.prefixes if p.task == task)


def decide_task(dataset: Dataset, task: str, options: TuneOptions) -> TaskDecision:
    stats = dataset.for_task(task)
    base = current_model(stats)
    # Every model seen anywhere is a candidate for every task: evidence on one task may be missing on another.
    candidates = tuple(sorted({*options.routing.candidates, *(m.model for m in dataset.models)}))
    route = decide_route(stats, replace(options.routing, candidates=candidates))
    target: ModelStats = next(s for s in stats if s.model == route.model)
    # The target model's own lengths decide its cap; a model never seen on this task would have none.
    cap = decide_max_tokens(target, options.truncation_target)
    prefixes = [p for p in dataset.prefixes if p.task == task]
    cache = decide_cache(prefixes, route.model)
    if cache.ttl != "none" and _already_caching(dataset, task):
        # Observed costs already include today's cache reads: do not count those savings twice.
        cache = replace(cache, saving_per_call=0.0, reason=cache.reason + " (already caching: costs include it)")
    before = base.cost_per_call or (repriced_cost(base, base.model) or 0.0)
    after = (target.cost_per_call or (repriced_cost(base, target.model) or 0.0)) - cache.saving_per_call
    calls = sum(s.calls for s in stats)
    return TaskDecision(task, calls, route, cap, cache, before, max(after, 0.0))


def decide_all(dataset: Dataset, options: TuneOptions) -> list[TaskDecision]:
    return [decide_task(dataset, task, options) for task in dataset.tasks() if task != UNLABELLED]


def _evidence(d: TaskDecision) -> dict[str, object]:
    return {
        "calls": d.calls,
        "cost_per_call_before": round(d.cost_before, 8),
        "cost_per_call_after": round(d.cost_after, 8),
        "saving_per_1k_calls": round(d.saving_per_call * 1000, 6),
        "saving_at_observed_volume": round(d.saving_per_call * d.calls, 6),
        "routing": {"reason": d.route.reason, **d.route.evidence},
        "max_tokens": {"reason": d.cap.reason, **d.cap.evidence},
        "cache": {"reason": d.cache.reason, **d.cache.evidence},
    }


def rules_for(d: TaskDecision) -> list[Rule]:
    rule = Rule(
        task=d.task,
        model=d.route.model if d.route.changed else None,
        max_tokens=d.cap.max_tokens,
        max_tokens_mode=d.cap.mode,
        cache=CacheAction(ttl=d.cache.ttl) if d.cache.ttl != "none" else None,
        explore=Explore(d.route.explore_model, d.route.explore_share)
        if d.route.explore_model and d.route.explore_share
        else None,
        evidence=_evidence(d),
    )
    if not d.cap.buckets:
        return [rule]
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


def build_policy(dataset: Dataset, decisions: list[TaskDecision], options: TuneOptions) -> Policy:
    rules = tuple(rule for d in decisions for rule in rules_for(d))
    metadata: dict[str, object] = {
        "tuner_version": TUNER_VERSION,
        "span_count": dataset.spans,
        "call_count": dataset.calls,
        "feedback_count": dataset.feedback,
        "data_window": {"start": _iso(dataset.start_ns), "end": _iso(dataset.end_ns)},
        "options": options.as_metadata(),
    }
    draft = Policy(version="draft", rules=rules, metadata=metadata)
    # The version names the content: same input and options give the same version, any change a new one.
    digest = hashlib.sha256(dump_policy(draft).encode()).hexdigest()[:8]
    day = (_iso(dataset.end_ns) or "00000000")[:10].replace("-", "")
    return replace(draft, version=f"{day}-{digest}")
