"""What paired evaluation costs, per task: the spend metric, the budget check, and the pairs given up.

Shadow and judge calls are not the application's traffic: their cost goes to `otel_claude.evaluation.cost` (labels:
model, task, role), never to `otel_claude.cost` or `otel_claude.calls`. The budget compares a task's evaluation spend
(plus the expected cost of pairs still in flight) with a share of the task's own spend in this process. Pairs come in
runs: one admitted right after another is expected to find the candidate's prompt cache warm and cost less, so a run
starts only when the budget has room for more than its first pair.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Observation

from . import semconv as sc

__all__ = ["EvaluationSpend", "PairSpend"]


@dataclasses.dataclass(slots=True)
class PairSpend:
    """An admitted pair's place in its task's evaluation budget."""

    task: str | None
    warm: bool  # admitted right after another admitted pair: the candidate's prompt cache is likely still warm
    reserved: float  # its expected cost, held against the budget until it finishes
    cost: float = 0.0  # what its shadow and judge calls have cost so far


class _Mean:
    __slots__ = ("count", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0

    def value(self) -> float | None:
        return self.total / self.count if self.count else None


class _TaskBudget:
    __slots__ = ("cold", "reserved", "running", "spent", "warm")

    def __init__(self) -> None:
        self.spent = 0.0
        self.reserved = 0.0  # expected cost of the pairs in flight
        self.running = False  # the task's last sampled call was admitted
        self.cold = _Mean()  # finished pairs that started a run
        self.warm = _Mean()  # finished pairs that continued one

    def expected(self, warm: bool) -> float:
        """A pair's expected cost: the mean of finished pairs like it, else of any (0 before the first finishes)."""
        mine, other = (self.warm, self.cold) if warm else (self.cold, self.warm)
        value = mine.value()
        if value is None:
            value = other.value()
        return value or 0.0

    def run_reserve(self) -> float:
        """What a pair starting a run must leave in the budget for the cheaper pairs that follow it.

        The candidate's first call after a pause pays to write its prompt cache; the next pairs read it for about a
        tenth of the price. Starting a pair with only its own cost in the budget leaves nothing for those, so every
        pair would pay the write and the budget would buy a handful of pairs where it could buy many. Until a
        continuing pair has been seen, the reserve is one more starting pair's cost.
        """
        cold, warm = self.cold.value(), self.warm.value()
        if cold is None:
            return 0.0
        return cold if warm is None else max(0.0, cold - warm)


class EvaluationSpend:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cost: dict[tuple[str | None, str | None, str], float] = {}  # (model, task, role) -> USD
        self._tasks: dict[str | None, _TaskBudget] = {}
        self._skipped: dict[tuple[str | None, str], int] = {}

    def add(self, model: str | None, task: str | None, role: str, cost: float, pair: PairSpend | None) -> None:
        with self._lock:
            key = (model, task, role)
            self._cost[key] = self._cost.get(key, 0.0) + cost
            self._task(task).spent += cost
            if pair is not None:
                pair.cost += cost

    def _task(self, task: str | None) -> _TaskBudget:
        budget = self._tasks.get(task)
        if budget is None:
            budget = self._tasks[task] = _TaskBudget()
        return budget

    def spent(self, task: str | None) -> float:
        with self._lock:
            budget = self._tasks.get(task)
            return budget.spent if budget is not None else 0.0

    def admit(self, task: str | None, budget: float, task_spend: float) -> PairSpend | None:
        """A spend entry for a pair of `task` if the spend so far, the pairs in flight and this one (at the mean cost of
        finished pairs like it) stay within `budget` x `task_spend`, or None. A pair that starts a run must also
        leave room for the run (`run_reserve`). Counting this pair too keeps the spend under the budget rather than
        one pair over it."""
        with self._lock:
            state = self._task(task)
            warm = state.running
            cost = state.expected(warm)
            needed = state.spent + state.reserved + cost + (0.0 if warm else state.run_reserve())
            if needed > budget * task_spend:
                state.running = False
                return None
            state.running = True
            state.reserved += cost
            return PairSpend(task, warm, cost)

    def within(self, task: str | None, budget: float, task_spend: float) -> bool:
        """Whether more spend (a judge call) still fits the budget."""
        return self.spent(task) <= budget * task_spend

    def finish(self, pair: PairSpend, completed: bool) -> None:
        """A pair is done (`completed`: its calls were made, and its cost informs the next admissions)."""
        with self._lock:
            state = self._task(pair.task)
            state.reserved = max(0.0, state.reserved - pair.reserved)
            if completed:
                mean = state.warm if pair.warm else state.cold
                mean.count += 1
                mean.total += pair.cost

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
