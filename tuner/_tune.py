"""From a dataset (and what earlier windows established) to decisions per task and a policy.

Per task: the quality evidence is updated (`_evidence`, carried in `_state`), every candidate model is priced with
its own best caching (`_costs`), routing picks the cheapest model shown close enough and plans the evidence still
missing (`_routing`), and the cap is fitted on the chosen model's own lengths (`_max_tokens`). Decisions are made
from unrounded values; the policy's evidence and the report are derived from the decisions afterwards.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import numpy as np

from otel_claude.policy import CacheAction, Conditions, Evaluate, Explore, Judge, Limit, Policy, Rule, dump_policy
from tuner._caching import CacheDecision
from tuner._conversation import ConversationDecision
from tuner._costs import CostEstimate, estimate_cost
from tuner._dataset import Dataset, ModelStats, in_range, restrict
from tuner._evidence import TaskEvidence
from tuner._max_tokens import CapDecision, decide_max_tokens
from tuner._records import UNLABELLED, UNTRACKED
from tuner._routing import RouteDecision, RoutingOptions, Segment, current_model, decide_route, decide_route_by_size
from tuner._state import TaskMemory, TunerState
from tuner._version import TUNER_VERSION


@dataclass(frozen=True, kw_only=True)
class TuneOptions:
    """Explicit, validated parameters of a tuning run."""

    truncation_target: float = 0.01
    routing: RoutingOptions = field(default_factory=RoutingOptions)

    def __post_init__(self) -> None:
        if not 0 < self.truncation_target <= 0.5:
            raise ValueError(f"truncation_target must be in (0, 0.5], got {self.truncation_target}")

    def as_metadata(self) -> dict[str, object]:
        routing = {name: getattr(self.routing, name) for name in self.routing.__dataclass_fields__}
        routing["candidates"] = list(self.routing.candidates)
        return {"truncation_target": self.truncation_target, **routing}


@dataclass(frozen=True, kw_only=True)
class SegmentDecision:
    """Routing and cap for one input-size range of a task (conditional rules)."""

    segment: Segment
    cap: CapDecision


@dataclass(frozen=True, kw_only=True)
class TaskDecision:
    task: str
    calls: int  # the task's application calls in this window
    route: RouteDecision
    cap: CapDecision
    cache: CacheDecision
    costs: dict[str, CostEstimate]
    cost_before: float  # observed $ per call on the current model
    cost_after: float  # expected $ per call under the decision
    segments: tuple[SegmentDecision, ...] = ()
    conversation: ConversationDecision = field(default_factory=lambda: ConversationDecision("none", "not decided"))
    explore_cap: int | None = None  # a candidate's own cap, where its lengths support one
    # Callers of one task on different models, kept as they are: each model's own cap where it differs.
    model_caps: tuple[tuple[str, CapDecision], ...] = ()
    # What an `evaluate` block carries besides its share: the spend bound and the opt-in judge.
    evaluation_budget: float = 0.05
    judge_model: str | None = None

    @property
    def asked_for(self) -> str:
        """The model the callers ask for."""
        return self.route.reference

    def routes_to(self, model: str) -> str | None:
        """The rule's `model` for sending this task to `model`: None when that is what the callers ask for."""
        return None if model == self.asked_for else model

    @property
    def saving_per_call(self) -> float:
        return self.cost_before - self.cost_after


def _already_caching(stats: list[ModelStats]) -> bool:
    return any(s.mean_cache_read > 0 for s in stats)


def _evidence_for(dataset: Dataset, task: str, stats: list[ModelStats], options: TuneOptions,
                  state: TunerState) -> TaskEvidence:
    evidence = TaskEvidence.restore(options.routing.alpha, state.task(task).evidence)
    for s in stats:
        scored = ~np.isnan(s.scores)
        if np.any(scored):
            evidence.add_scores(s.model, s.times[scored], s.scores[scored])
    for stream in dataset.verdicts_for(task):
        evidence.add_verdicts(stream.incumbent, stream.candidate, stream.times, stream.values, stream.settled)
    return evidence


def decide_task(dataset: Dataset, task: str, options: TuneOptions, state: TunerState | None = None) -> TaskDecision:
    """The decision for one task; `state` (updated in place) carries evidence and decisions across windows."""
    state = state if state is not None else TunerState()
    memory = state.task(task)
    stats = dataset.for_task(task)
    base = current_model(stats)
    by_model = {s.model: s for s in stats}
    prefixes = [p for p in dataset.prefixes if p.task == task]
    judge = (options.routing.judge_model,) if options.routing.judge_model else ()
    names = sorted({*options.routing.candidates, *(m.model for m in dataset.models), base.requested_model, *judge})
    conversations = dataset.conversation(task)
    costs = {name: c for name in names
             if (c := estimate_cost(name, stats, prefixes, base, conversations)) is not None}
    calls = sum(s.calls for s in stats)
    evidence = _evidence_for(dataset, task, stats, options, state)
    route = decide_route(stats, options.routing, evidence=evidence, costs=costs, memory=memory, window_calls=calls)
    segments = _segments(stats, options, costs, by_model, memory)

    target = by_model.get(route.model)
    current_cap = memory.max_tokens
    if target is not None:
        if current_cap is not None and target.model == base.model:
            # The cap in force is the one the last policy set, not the most common value in this window's data.
            target = replace(target, max_tokens=current_cap)
        cap = decide_max_tokens(target, options.truncation_target)
    else:
        cap = CapDecision(None, "cap", f"no calls of {route.model} on this task yet: keep the callers' max_tokens",
                          False)
    cache = costs[route.model].cache if route.model in costs else CacheDecision("none", "no prices", 0.0)
    conversation = costs[route.model].conversation if route.model in costs else ConversationDecision("none", "")
    if cache.ttl != "none" and _already_caching(stats):
        cache = replace(cache, reason=cache.reason + " (the traffic already caches: its observed cost includes it)")

    before = base.cost_per_call or (costs[base.model].uncached_per_call if base.model in costs else 0.0)
    as_is = costs.get(base.model)
    if segments:
        chosen = sum(d.segment.share * costs[d.segment.route.model].per_call for d in segments)
    else:
        chosen = costs[route.model].per_call if route.model in costs else before
    if as_is is not None:
        today = as_is.uncached_per_call - as_is.realized  # what the traffic costs as it is, in the same model
        after = max(before - (today - chosen), 0.0)
    else:
        after = before

    explore_cap = None
    other = route.evaluate_model or route.explore_model
    if other in by_model:
        # The candidate's lengths (from exploration or shadow calls) give it its own cap where they differ.
        own = decide_max_tokens(by_model[other], options.truncation_target).max_tokens
        explore_cap = own if own is not None and own != cap.max_tokens else None
    model_caps: tuple[tuple[str, CapDecision], ...] = ()
    # (Not while a policy routes the task: these rules match on the model callers ask for, which is then the same
    # for the calls on every model.)
    if not route.changed and not segments and not cap.buckets and base.requested_model == base.model:
        # Callers' own use of another model, not calls an exploration share sent there.
        others = (s for s in stats if s.model != route.model and s.calls > s.explore_calls)
        decided = ((s.model, decide_max_tokens(s, options.truncation_target)) for s in others)
        model_caps = tuple((m, c) for m, c in decided if c.max_tokens is not None and c.max_tokens != cap.max_tokens)
    _remember(state, task, evidence, route, cap)
    return TaskDecision(task=task, calls=calls, route=route, cap=cap, cache=cache, costs=costs, cost_before=before,
                        cost_after=after, segments=segments, conversation=conversation, explore_cap=explore_cap,
                        model_caps=model_caps, evaluation_budget=options.routing.evaluation_budget,
                        judge_model=options.routing.judge_model)


def _segments(stats: list[ModelStats], options: TuneOptions, costs: dict[str, CostEstimate],
              by_model: dict[str, ModelStats], memory: TaskMemory) -> tuple[SegmentDecision, ...]:
    buckets: dict[str, TaskEvidence] = {}

    def evidence_for(key: str) -> TaskEvidence:
        buckets[key] = TaskEvidence.restore(options.routing.alpha, memory.buckets.get(key))
        return buckets[key]

    segments = tuple(
        SegmentDecision(
            segment=segment,
            cap=decide_max_tokens(
                restrict(chosen, in_range(chosen.sizes, segment.input_min, segment.input_max)),
                options.truncation_target,
            ),
        )
        for segment in decide_route_by_size(stats, options.routing, costs=costs, evidence_for=evidence_for)
        for chosen in [by_model[segment.route.model]]
    )
    memory.buckets.update({key: evidence.state() for key, evidence in buckets.items()})
    return segments


def _remember(state: TunerState, task: str, evidence: TaskEvidence, route: RouteDecision, cap: CapDecision) -> None:
    memory = state.task(task)
    memory.evidence = evidence.state()
    memory.rejected = sorted({*memory.rejected, *(name for name, why in route.rejected.items()
                                                   if why.startswith("quality"))})
    if route.model == route.reference:
        memory.route, memory.route_low = None, None
    elif route.changed:
        # The bound that justified the move, against the callers' model: through the route it replaced, if any.
        earlier = memory.route_low if route.current != route.reference and memory.route_low is not None else 0.0
        memory.route = route.model
        memory.route_low = route.gaps[route.model].low + earlier
    memory.max_tokens = cap.max_tokens


def decide_all(dataset: Dataset, options: TuneOptions, state: TunerState | None = None) -> list[TaskDecision]:
    return [decide_task(dataset, task, options, state) for task in dataset.tasks() if task not in (UNLABELLED,
                                                                                                  UNTRACKED)]


def _evidence(d: TaskDecision) -> dict[str, object]:
    return {
        "calls": d.calls,
        "cost_per_call_before": round(d.cost_before, 8),
        "cost_per_call_after": round(d.cost_after, 8),
        "saving_per_1k_calls": round(d.saving_per_call * 1000, 6),
        "saving_at_observed_volume": round(d.saving_per_call * d.calls, 6),
        "routing": {"reason": d.route.reason, **d.route.evidence(d.costs),
                    **({"callers_ask_for": d.asked_for} if d.asked_for != d.route.current else {})},
        "max_tokens": {"reason": d.cap.reason, **d.cap.evidence},
        "cache": {"reason": d.cache.reason, **d.cache.evidence},
        **({"conversation": {"reason": d.conversation.reason, **d.conversation.evidence}}
           if d.conversation.evidence else {}),
    }


def rules_for(d: TaskDecision) -> list[Rule]:
    route = d.route
    rule = Rule(
        task=d.task,
        model=d.routes_to(route.model),
        max_tokens=d.cap.max_tokens,
        max_tokens_mode=d.cap.mode,
        cache=CacheAction(ttl=d.cache.ttl, conversation_ttl=d.conversation.ttl)
        if d.cache.ttl != "none" or d.conversation.ttl != "none" else None,
        explore=Explore(route.explore_model, route.explore_share, d.explore_cap)
        if route.explore_model and route.explore_share
        else None,
        evaluate=Evaluate(route.evaluate_model, route.evaluate_share, budget=d.evaluation_budget,
                          max_tokens=d.explore_cap, judge=Judge(d.judge_model) if d.judge_model else None,
                          pair_cost=route.evaluate_pair_cost)
        if route.evaluate_model and route.evaluate_share
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
                        "routing": {"reason": s.segment.route.reason, **s.segment.route.evidence(d.costs)},
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
                evaluate=None,
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
    return any(x is not None for x in (rule.model, rule.max_tokens, rule.cache, rule.explore, rule.evaluate))


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
