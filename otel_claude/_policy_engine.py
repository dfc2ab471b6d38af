"""Applying the policy to a call: pick the rule, decide the changes, rewrite the request body (or only record).

The caller's objects are never mutated: a changed body is a new dict, and changed tools/system lists are copies.
Exploration and rollout use counters rather than random draws, so the share is exact and a run is reproducible.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from typing import Any

from ._admission import Admission
from ._breakpoints import add_breakpoints
from ._forks import register as register_after_fork
from ._policy_source import PolicySource, open_source
from ._request import RequestInfo
from ._safety import report_failure
from .catalog import resolve
from .policy import Evaluate, Policy, Rule

__all__ = ["PolicyEngine", "PolicyOutcome", "write_request"]


class _Counter:
    """Decides 'is this call in the share?' so that after n calls exactly floor(n * share) were."""

    def __init__(self) -> None:
        self._count = itertools.count()

    def take(self, share: float) -> bool:
        n = next(self._count)
        return int((n + 1) * share) > int(n * share)


@dataclasses.dataclass(slots=True)
class PolicyOutcome:
    """What the policy did to one call (shadow: would have done); `_attributes` records it on the span.

    The requested/applied pairs and `breakpoints_added` are set only when the policy changed that value.
    """

    version: str
    mode: str
    rule: str | None = None
    rollout: bool = True  # False: the call fell outside rollout_percent
    requested_model: str | None = None
    applied_model: str | None = None
    requested_max_tokens: int | None = None
    applied_max_tokens: int | None = None
    breakpoints_added: int = 0
    exploration: bool = False
    safety_retry: bool = False
    # Sampled for paired evaluation (enforce mode only): the rule's block, and the candidate's cap when it has one.
    evaluate: Evaluate | None = None
    evaluate_max_tokens: int | None = None

    @property
    def lowered_max_tokens(self) -> bool:
        """The policy sent a max_tokens below the caller's: a max_tokens stop is then the policy's doing."""
        requested, applied = self.requested_max_tokens, self.applied_max_tokens
        return self.mode == "enforce" and requested is not None and applied is not None and applied < requested


class PolicyEngine:
    def __init__(self, source: PolicySource, *, safety_net: bool = True) -> None:
        self.source = source
        self.safety_net = safety_net
        self._counters: dict[tuple[str, str], _Counter] = {}
        self._lock = threading.Lock()
        # The policy's `limits`, followed on every reload (waiting calls see a change at once).
        self.admission = Admission()
        source.subscribe(self.admission.update)
        register_after_fork(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    @classmethod
    def from_source(
        cls, source: Any, *, reload_interval: float | None = None, safety_net: bool = True
    ) -> PolicyEngine | None:
        opened = open_source(source, reload_interval)
        return None if opened is None else cls(opened, safety_net=safety_net)

    def close(self) -> None:
        self.source.close()
        self.admission.close()

    def _counter(self, policy: Policy, key: str) -> _Counter:
        counter = self._counters.get((policy.version, key))
        if counter is None:
            with self._lock:
                counter = self._counters.setdefault((policy.version, key), _Counter())
        return counter

    # -- the call path ---------------------------------------------------------------------------------------------

    def apply(
        self, options: Any, body: dict[str, Any], info: RequestInfo, task: str | None, streaming: bool = False
    ) -> tuple[RequestInfo, PolicyOutcome | None]:
        """Rewrite the request as the policy says (enforce) or only record it (shadow); the new info and what was done.

        `body` is the request as it will be sent (parameters merged with `extra_body`); `streaming`: the response is
        streamed (the SDK sends a larger max_tokens that way than without).
        """
        try:
            policy = self.source.current()
            if policy is None:
                return info, None
            outcome = PolicyOutcome(policy.version, policy.mode)
            if policy.mode == "off":
                return info, outcome
            rule = _match(policy, task, info)
            if rule is None:
                return info, outcome
            if policy.rollout_percent < 100 and not self._counter(policy, "rollout").take(policy.rollout_percent / 100):
                outcome.rollout = False
                return info, outcome
            return self._apply_rule(policy, rule, options, body, info, outcome, streaming), outcome
        except Exception:
            report_failure("applying the policy")
            return info, None

    def _apply_rule(
        self, policy: Policy, rule: Rule, options: Any, body: dict[str, Any], info: RequestInfo,
        outcome: PolicyOutcome, streaming: bool
    ) -> RequestInfo:
        outcome.rule = rule.id
        changed: dict[str, Any] = {}

        requested_model = body.get("model")
        model = rule.model or requested_model
        cap_rule = rule
        if rule.explore is not None and self._counter(policy, rule.id).take(rule.explore.share):
            model = rule.explore.model
            outcome.exploration = True
            if rule.explore.max_tokens is not None:
                # The candidate answers at its own lengths: its cap, not the one fitted to the rule's model.
                cap_rule = Rule(task=rule.task, max_tokens=rule.explore.max_tokens, max_tokens_mode="cap")

        requested_max = body.get("max_tokens")
        thinking = body.get("thinking")
        applied_max = _within_limits(_max_tokens(cap_rule, requested_max, thinking), requested_max, model,
                                     model != requested_model, streaming)
        if model != requested_model and not _fits_thinking(applied_max, thinking):
            # The routed model's limit leaves no room above the thinking budget: this call keeps its own model.
            model, outcome.exploration = requested_model, False
            applied_max = _within_limits(_max_tokens(rule, requested_max, thinking), requested_max, model, False,
                                         streaming)
        # Only what the policy changes is recorded (each span attribute costs every call); unchanged values are the
        # request's own gen_ai.request.* attributes.
        if model != requested_model:
            changed["model"] = model
            outcome.requested_model = requested_model
            outcome.applied_model = model

        if applied_max is not None and applied_max != requested_max:
            changed["max_tokens"] = applied_max
            if isinstance(requested_max, int):
                outcome.requested_max_tokens = requested_max
            outcome.applied_max_tokens = applied_max

        evaluate = rule.evaluate
        # An exploration call already serves the candidate; shadow mode sends nothing the caller did not ask for.
        if evaluate is not None and policy.mode == "enforce" and not outcome.exploration and \
                self._counter(policy, rule.id + "/evaluate").take(evaluate.share):
            outcome.evaluate = evaluate
            if evaluate.max_tokens is not None:
                candidate_cap = Rule(task=rule.task, max_tokens=evaluate.max_tokens, max_tokens_mode="cap")
                outcome.evaluate_max_tokens = _max_tokens(candidate_cap, requested_max, body.get("thinking"))

        if rule.cache is not None:
            outcome.breakpoints_added = add_breakpoints(body, changed, rule.cache, info)

        if not changed or policy.mode != "enforce":
            return info
        write_request(options, changed)
        return dataclasses.replace(
            info,
            model=changed.get("model", info.model),
            max_tokens=changed.get("max_tokens", info.max_tokens),
            breakpoints=info.breakpoints + outcome.breakpoints_added,
        )

    def safety_retry(self, outcome: PolicyOutcome | None, finish_reason: str | None, streaming: bool
                     ) -> dict[str, Any] | None:
        """The request changes that re-send a policy-truncated, non-streamed call as the caller asked it: their
        max_tokens, and their model too when the routed one cannot take that max_tokens. None: no retry is due."""
        if not self.safety_net or streaming or outcome is None or not outcome.lowered_max_tokens \
                or finish_reason != "max_tokens":
            return None
        requested = int(outcome.requested_max_tokens)  # type: ignore[arg-type]
        changes: dict[str, Any] = {"max_tokens": requested}
        if outcome.applied_model is not None:
            info = resolve(outcome.applied_model)
            limit = info.max_tokens_limit(streaming=False) if info is not None else None
            if limit is not None and requested > limit:
                changes["model"] = outcome.requested_model
        return changes


def write_request(options: Any, changed: dict[str, Any]) -> None:
    """Put changes where the SDK will take them from: `extra_body` wins over parameters, so keys it holds go there."""
    extra = getattr(options, "extra_json", None)
    if extra:
        options.extra_json = {**extra, **{k: v for k, v in changed.items() if k in extra}}
        changed = {k: v for k, v in changed.items() if k not in extra}
    if changed:
        options.json_data = {**options.json_data, **changed}


def _match(policy: Policy, task: str | None, info: RequestInfo) -> Rule | None:
    for rule in policy.rules:
        if rule.task != "*" and rule.task != task:
            continue
        when = rule.when
        if when is not None:
            if when.models is not None and info.model not in when.models:
                continue
            size = info.input_tokens_estimate
            if when.input_tokens_min is not None and size < when.input_tokens_min:
                continue
            if when.input_tokens_max is not None and size >= when.input_tokens_max:
                continue
        return rule
    return None


def _within_limits(value: int | None, requested: Any, model: Any, routed: bool, streaming: bool) -> int | None:
    """`value` brought within what `model` accepts and the SDK sends (its output limit; without streaming, the SDK's
    long-request bound). A policy never raises max_tokens past a limit, but a caller's own value past one (their
    model, their timeout) is theirs: it stands unless the call is routed to a model that cannot take it."""
    if value is None:
        return None
    info = resolve(model) if isinstance(model, str) else None
    limit = info.max_tokens_limit(streaming) if info is not None else None
    if limit is None or value <= limit:
        return value
    if not routed and isinstance(requested, int) and not isinstance(requested, bool):
        return min(value, max(limit, requested))
    return limit


def _fits_thinking(value: int | None, thinking: Any) -> bool:
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    return value is None or not isinstance(budget, int) or value > budget


def _max_tokens(rule: Rule, requested: Any, thinking: Any) -> int | None:
    if rule.max_tokens is None:
        return requested if isinstance(requested, int) else None
    value = rule.max_tokens
    if rule.max_tokens_mode == "cap" and isinstance(requested, int):
        value = min(value, requested)
    # Extended thinking needs max_tokens above its budget: never cap into a request the API would reject.
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    if isinstance(budget, int) and value <= budget:
        return requested if isinstance(requested, int) else None
    return value
