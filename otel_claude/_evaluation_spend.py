"""What paired evaluation costs, per task: the spend metric, the budget check, and the pairs given up.

Shadow and judge calls are not the application's traffic: their cost goes to `otel_claude.evaluation.cost` (labels:
model, task, role), never to `otel_claude.cost` or `otel_claude.calls`. The budget compares a task's evaluation spend
(plus the expected cost of pairs still in flight) with a share of the task's own spend in this process. Pairs come in
runs: one admitted right after another may find the candidate's prompt cache warm and cost less, so a run starts
only when the budget has room for more than its first pair.
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
    continuing: bool  # admitted right after another pair: the candidate's prompt cache may still be warm
    reserved: float  # held against the budget until it finishes (`_TaskBudget.expected`)
    cost: float = 0.0  # what its shadow and judge calls have cost so far
    read_cache: bool = False  # its candidate call read the candidate's prompt cache


class _Mean:
    __slots__ = ("count", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value

    def value(self) -> float | None:
        return self.total / self.count if self.count else None


class _TaskBudget:
    """One task's evaluation spend, and what its pairs have cost.

    Pairs are priced from what happened, not from what was predicted: the mean cost of pairs whose candidate call
    read its prompt cache, of those that did not, and how often a pair admitted right after another found the cache
    warm (which depends on how far apart sampled calls come, unknown to the process: scenario time, night traffic).
    """

    __slots__ = ("continued", "continued_read", "judge", "read", "reserved", "running", "spent", "unread")

    def __init__(self) -> None:
        self.spent = 0.0
        self.reserved = 0.0  # expected cost of the pairs in flight
        self.running = False  # the task's last sampled call was admitted
        self.read = _Mean()
        self.unread = _Mean()
        self.continued = 0
        self.continued_read = 0
        self.judge = _Mean()  # the cost of one judge call

    def expected(self, continuing: bool, prior: float = 0.0, hold: bool = False) -> float:
        """A pair's expected cost (`prior` until a pair has finished).

        A continuing pair may find the candidate's cache warm. Until continuing pairs have shown how often (and at
        what cost), admission counts one more warm pair than seen, so a run is worth trying (an unknown reading pair
        counts as free); what is held against the budget while the pair runs (`hold`) counts one more cold pair,
        so several pairs of an untried run in flight at once cannot together overspend.
        """
        read, unread = self.read.value(), self.unread.value()
        if read is None and unread is None:
            return prior
        if not continuing:
            return unread if unread is not None else read  # type: ignore[return-value]
        warm = (self.continued_read + (0 if hold else 1)) / (self.continued + 2)
        return warm * (read or 0.0) + (1 - warm) * (unread if unread is not None else read)  # type: ignore[operator]

    def run_reserve(self) -> float:
        """What a pair starting a run must leave in the budget: what it costs beyond a continuing pair.

        The candidate's first call after a pause pays to write its prompt cache; the next pairs may read it for a
        tenth of the price. Starting a pair with only its own cost in the budget leaves nothing for those, and every
        pair would pay the write. Where continuing pairs cost no less (no cache, or sampled calls too far apart),
        the reserve is nothing and pairs are admitted one by one as the budget allows.
        """
        unread = self.unread.value()
        return max(0.0, unread - self.expected(True)) if unread is not None else 0.0

    def finished(self, pair: PairSpend) -> None:
        (self.read if pair.read_cache else self.unread).add(pair.cost)
        if pair.continuing:
            self.continued += 1
            self.continued_read += pair.read_cache


class EvaluationSpend:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cost: dict[tuple[str | None, str | None, str], float] = {}  # (model, task, role) -> USD
        self._tasks: dict[str | None, _TaskBudget] = {}
        self._skipped: dict[tuple[str | None, str], int] = {}

    def add(self, model: str | None, task: str | None, role: str, cost: float, pair: PairSpend | None,
            read_cache: bool = False) -> None:
        with self._lock:
            key = (model, task, role)
            self._cost[key] = self._cost.get(key, 0.0) + cost
            self._task(task).spent += cost
            if role == sc.ROLE_JUDGE:
                self._task(task).judge.add(cost)
            if pair is not None:
                pair.cost += cost
                if role == sc.ROLE_SHADOW:
                    pair.read_cache = read_cache

    def _task(self, task: str | None) -> _TaskBudget:
        budget = self._tasks.get(task)
        if budget is None:
            budget = self._tasks[task] = _TaskBudget()
        return budget

    def spent(self, task: str | None) -> float:
        with self._lock:
            budget = self._tasks.get(task)
            return budget.spent if budget is not None else 0.0

    def admit(self, task: str | None, budget: float, task_spend: float, prior: float) -> PairSpend | None:
        """A spend entry for a pair of `task` if the spend so far, the pairs in flight and this one (at the mean cost of
        finished pairs like it, or `prior` before any has finished) stay within `budget` x `task_spend`, or None.
        A pair that starts a run must also leave room for the run (`run_reserve`). Counting this pair too keeps the
        spend under the budget rather than one pair over it; the prior keeps a process that has just started from
        admitting pairs, several at once where calls run concurrently, before its task has spent anything."""
        with self._lock:
            state = self._task(task)
            continuing = state.running
            cost = state.expected(continuing, prior)
            needed = state.spent + state.reserved + cost + (0.0 if continuing else state.run_reserve())
            if needed > budget * task_spend:
                state.running = False
                return None
            state.running = True
            held = max(cost, state.expected(continuing, prior, hold=True))
            state.reserved += held
            return PairSpend(task, continuing, held)

    def may_judge(self, pair: PairSpend, budget: float, task_spend: float, prior: float) -> bool:
        """Whether asking the judge about `pair` (twice, at the mean cost of the task's judge calls so far, or
        `prior` before any) keeps the spend, with the other pairs in flight, within the budget."""
        with self._lock:
            state = self._task(pair.task)
            others = max(0.0, state.reserved - pair.reserved)
            judge = state.judge.value()
            return state.spent + others + 2 * (prior if judge is None else judge) <= budget * task_spend

    def finish(self, pair: PairSpend, completed: bool) -> None:
        """A pair is done (`completed`: its calls were made, and its cost informs the next admissions)."""
        with self._lock:
            state = self._task(pair.task)
            state.reserved = max(0.0, state.reserved - pair.reserved)
            if completed:
                state.finished(pair)

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
