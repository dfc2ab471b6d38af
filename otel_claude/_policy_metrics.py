"""The policy in force, as metrics: when each version came into force, and what its tuner predicted per task.

A dashboard draws an annotation at each version's load time, and sets the realised cost per call of a task
beside the cost per call the tuner predicted for it (the rule's `evidence.cost_per_call_before` / `_after`).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Observation

from . import semconv as sc
from ._policy_source import PolicySource
from .policy import Policy

__all__ = ["PolicyMetrics"]

_PREDICTIONS = (("before", "cost_per_call_before"), ("after", "cost_per_call_after"))


class PolicyMetrics:
    def __init__(self) -> None:
        self._sources: weakref.WeakSet[PolicySource] = weakref.WeakSet()
        self._loaded: dict[str, float] = {}  # version -> unix time it first came into force here
        self._lock = threading.Lock()

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def watch(self, source: PolicySource) -> None:
        self._sources.add(source)
        source.subscribe(self._came_into_force)

    def forget(self, source: PolicySource) -> None:
        """The source's policy is no longer in force here (uninstrument)."""
        self._sources.discard(source)

    def _came_into_force(self, policy: Policy | None) -> None:
        if policy is not None:
            with self._lock:
                self._loaded.setdefault(policy.version, time.time())

    def _policies(self) -> list[Policy]:
        return [policy for source in list(self._sources) if (policy := source.current()) is not None]

    def observe_loaded(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            loaded = dict(self._loaded)
        return [Observation(loaded[p.version], {sc.POLICY_VERSION: p.version, sc.POLICY_MODE: p.mode})
                for p in self._policies() if p.version in loaded]

    def observe_predicted(self, _options: CallbackOptions) -> Iterable[Observation]:
        observations = []
        for policy in self._policies():
            seen: set[str] = set()
            for rule in policy.rules:
                # A task's first rule without conditions carries the task's prediction (later ones are narrower).
                if rule.when is not None or rule.task in seen:
                    continue
                seen.add(rule.task)
                for label, key in _PREDICTIONS:
                    value = rule.evidence.get(key)
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        observations.append(Observation(float(value), {
                            sc.TASK: rule.task, sc.POLICY_VERSION: policy.version, sc.PREDICTION_LABEL: label}))
        return observations
