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
from ._policy_source import PolicySource, open_source
from ._request import RequestInfo
from ._safety import report_failure
from .policy import Policy, Rule

__all__ = ["PolicyEngine", "PolicyOutcome", "write_request"]

_MAX_BREAKPOINTS = 4  # the API rejects a fifth cache_control marker


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


class PolicyEngine:
    def __init__(self, source: PolicySource, *, safety_net: bool = True) -> None:
        self.source = source
        self.safety_net = safety_net
        self._counters: dict[tuple[str, str], _Counter] = {}
        self._lock = threading.Lock()
        # The policy's `limits`, followed on every reload (waiting calls see a change at once).
        self.admission = Admission()
        source.subscribe(self.admission.update)

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
        self, options: Any, body: dict[str, Any], info: RequestInfo, task: str | None
    ) -> tuple[RequestInfo, PolicyOutcome | None]:
        """Rewrite the request as the policy says (enforce) or only record it (shadow); the new info and what was done.

        `body` is the request as it will be sent (parameters merged with `extra_body`).
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
            return self._apply_rule(policy, rule, options, body, info, outcome), outcome
        except Exception:
            report_failure("applying the policy")
            return info, None

    def _apply_rule(
        self, policy: Policy, rule: Rule, options: Any, body: dict[str, Any], info: RequestInfo, outcome: PolicyOutcome
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
        # Only what the policy changes is recorded (each span attribute costs every call); unchanged values are the
        # request's own gen_ai.request.* attributes.
        if model != requested_model:
            changed["model"] = model
            outcome.requested_model = requested_model
            outcome.applied_model = model

        requested_max = body.get("max_tokens")
        applied_max = _max_tokens(cap_rule, requested_max, body.get("thinking"))
        if applied_max is not None and applied_max != requested_max:
            changed["max_tokens"] = applied_max
            if isinstance(requested_max, int):
                outcome.requested_max_tokens = requested_max
            outcome.applied_max_tokens = applied_max

        if rule.cache is not None and rule.cache.ttl != "none":
            outcome.breakpoints_added = _add_breakpoints(
                body, changed, rule.cache.ttl, rule.cache.targets, info.breakpoints
            )

        if not changed or policy.mode != "enforce":
            return info
        write_request(options, changed)
        return dataclasses.replace(
            info,
            model=changed.get("model", info.model),
            max_tokens=changed.get("max_tokens", info.max_tokens),
            breakpoints=info.breakpoints + outcome.breakpoints_added,
        )

    def safety_retry_tokens(
        self, outcome: PolicyOutcome | None, finish_reason: str | None, streaming: bool
    ) -> int | None:
        """The caller's max_tokens when a policy-lowered, non-streamed call was truncated; else None."""
        if not self.safety_net or streaming or outcome is None or outcome.mode != "enforce":
            return None
        requested, applied = outcome.requested_max_tokens, outcome.applied_max_tokens
        if requested is None or applied is None or applied >= requested or finish_reason != "max_tokens":
            return None
        return int(requested)


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


def _marker(ttl: str) -> dict[str, str]:
    return {"type": "ephemeral", "ttl": ttl} if ttl != "5m" else {"type": "ephemeral"}


def _has_marker(blocks: Any) -> bool:
    return isinstance(blocks, list) and any(isinstance(b, dict) and b.get("cache_control") for b in blocks)


def _add_breakpoints(
    body: dict[str, Any], changed: dict[str, Any], ttl: str, targets: tuple[str, ...], existing: int
) -> int:
    """Mark the end of tools and/or system for caching, skipping parts the caller already marked."""
    added = 0
    budget = _MAX_BREAKPOINTS - existing
    if "tools" in targets and added < budget:
        tools = body.get("tools")
        if isinstance(tools, list) and tools and isinstance(tools[-1], dict) and not _has_marker(tools):
            changed["tools"] = [*tools[:-1], {**tools[-1], "cache_control": _marker(ttl)}]
            added += 1
    if "system" in targets and added < budget:
        system = body.get("system")
        if isinstance(system, str) and system:
            changed["system"] = [{"type": "text", "text": system, "cache_control": _marker(ttl)}]
            added += 1
        elif isinstance(system, list) and system and isinstance(system[-1], dict) and not _has_marker(system):
            changed["system"] = [*system[:-1], {**system[-1], "cache_control": _marker(ttl)}]
            added += 1
    return added
