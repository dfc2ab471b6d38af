"""What paired evaluation costs, per task: the spend metric, the budget check, and the pairs given up.

Shadow and judge calls are not the application's traffic: their cost goes to `otel_claude.evaluation.cost` (labels:
model, task, role), never to `otel_claude.cost` or `otel_claude.calls`. The budget compares a task's evaluation spend
(plus the expected cost of pairs still in flight) with a share of the task's own spend in this process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Observation

from . import semconv as sc

__all__ = ["EvaluationSpend"]


class EvaluationSpend:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cost: dict[tuple[str | None, str | None, str], float] = {}  # (model, task, role) -> USD
        self._spent: dict[str | None, float] = {}
        self._finished: dict[str | None, int] = {}
        self._in_flight: dict[str | None, int] = {}
        self._skipped: dict[tuple[str | None, str], int] = {}

    def add(self, model: str | None, task: str | None, role: str, cost: float) -> None:
        with self._lock:
            key = (model, task, role)
            self._cost[key] = self._cost.get(key, 0.0) + cost
            self._spent[task] = self._spent.get(task, 0.0) + cost

    def spent(self, task: str | None) -> float:
        with self._lock:
            return self._spent.get(task, 0.0)

    def admit(self, task: str | None, budget: float, task_spend: float) -> bool:
        """Reserve a pair for `task` if its spend so far, plus the pairs in flight and this one at the mean cost of a
        finished pair, stays within `budget` x `task_spend` (counting this one too keeps the spend under the budget
        rather than one pair over it)."""
        with self._lock:
            finished = self._finished.get(task, 0)
            spent = self._spent.get(task, 0.0)
            in_flight = self._in_flight.get(task, 0)
            expected = spent + ((in_flight + 1) * spent / finished if finished else 0.0)
            if expected > budget * task_spend:
                return False
            self._in_flight[task] = in_flight + 1
            return True

    def within(self, task: str | None, budget: float, task_spend: float) -> bool:
        """Whether more spend (a judge call) still fits the budget."""
        return self.spent(task) <= budget * task_spend

    def finish(self, task: str | None, completed: bool) -> None:
        """A reserved pair is done (`completed`: its calls were made and count toward the mean pair cost)."""
        with self._lock:
            self._in_flight[task] = max(0, self._in_flight.get(task, 0) - 1)
            if completed:
                self._finished[task] = self._finished.get(task, 0) + 1

    def skip(self, task: str | None, reason: str) -> None:
        with self._lock:
            key = (task, reason)
            self._skipped[key] = self._skipped.get(key, 0) + 1

    def observe_cost(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._cost.items())
        observations = []
        for (model, task, role), value in items:
            labels = {sc.EVALUATION_ROLE: role}
            if model is not None:
                labels[sc.GEN_AI_REQUEST_MODEL] = model
            if task is not None:
                labels[sc.TASK] = task
            observations.append(Observation(value, labels))
        return observations

    def observe_skipped(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._skipped.items())
        return [Observation(value, {sc.EVALUATION_SKIP_REASON: reason, **({sc.TASK: task} if task else {})})
                for (task, reason), value in items]
