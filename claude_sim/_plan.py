"""When a scenario's calls happen: per-task arrival processes, sessions expanded into turns, merged in time order.

The driver sends each planned call at its time on the scenario clock; the oracle replays the same plans. Draws are
keyed by (seed, task, index), and events are generated in time order, so a longer horizon only adds later events:
the first N calls of a plan do not depend on how far ahead it was generated.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from statistics import NormalDist

from claude_sim._rng import unit
from claude_sim._scenario import Scenario
from claude_sim._spec import Arrivals

__all__ = ["PlannedCall", "plan_calls", "session_starts"]

CASE_SPACE = 1_000_000_000
_NORMAL = NormalDist()


@dataclass(frozen=True)
class PlannedCall:
    at: float  # scenario seconds
    task: str
    case: int
    turn: int
    turns: int
    session: int  # the session's number within its task


def _poisson(seed: int, task: str, stream: str, rate: float, start: float, end: float) -> Iterator[float]:
    t = start
    k = 0
    while rate > 0:
        t += -math.log(unit(seed, stream, task, k)) / rate
        if t >= end:
            return
        yield t
        k += 1


def _daily(seed: int, task: str, arrivals: Arrivals, rate: float, start: float, end: float) -> Iterator[float]:
    # Thinning: candidates at the peak rate, each kept with probability rate(t) / peak.
    peak = rate * (1.0 + arrivals.swing)
    for k, t in enumerate(_poisson(seed, task, "gap", peak, start, end)):
        if unit(seed, "keep", task, k) * (1.0 + arrivals.swing) < arrivals.factor(t):
            yield t


def _count(u: float, mean: float) -> int:
    """The u-quantile of a Poisson count (normal approximation above a mean of 30)."""
    if mean > 30:
        return max(0, round(mean + math.sqrt(mean) * _NORMAL.inv_cdf(u)))
    k, term = 0, math.exp(-mean)
    total = term
    while total < u:
        k += 1
        term *= mean / k
        total += term
    return k


def _bursts(seed: int, task: str, arrivals: Arrivals, rate: float, start: float, end: float) -> list[float]:
    times = list(_poisson(seed, task, "gap", rate * (1.0 - arrivals.burst_share), start, end))
    mean_size = rate * arrivals.burst_share * arrivals.every_s
    for j, begin in enumerate(_poisson(seed, task, "burst", 1.0 / arrivals.every_s, start, end)):
        for i in range(_count(unit(seed, "burst_size", task, j), mean_size)):
            t = begin + unit(seed, "in_burst", task, j, i) * arrivals.length_s
            if t < end:
                times.append(t)
    return sorted(times)


def session_starts(scenario: Scenario, task: str, seed: int, start: float, end: float) -> list[float]:
    """Start times of a task's sessions (single calls for a one-turn task) in [start, end)."""
    spec = scenario.tasks[task]
    rate = scenario.call_rate(task) / spec.mean_turns
    if spec.arrivals.shape == "daily":
        return list(_daily(seed, task, spec.arrivals, rate, start, end))
    if spec.arrivals.shape == "bursts":
        return _bursts(seed, task, spec.arrivals, rate, start, end)
    return list(_poisson(seed, task, "gap", rate, start, end))


def _window(scenario: Scenario, seed: int, start: float, end: float) -> list[PlannedCall]:
    planned = []
    for task in scenario.tasks:
        for number, begin in enumerate(session_starts(scenario, task, seed, start, end)):
            index = int(unit(seed, "case", task, number) * CASE_SPACE)
            case = scenario.case(task, index)
            at = begin
            for turn in range(1, case.turns + 1):
                if turn > 1:
                    at += scenario.think(task, index, turn)
                if at >= end:
                    break
                planned.append(PlannedCall(at, task, index, turn, case.turns, number))
    order = {name: position for position, name in enumerate(scenario.tasks)}
    planned.sort(key=lambda call: (call.at, order[call.task], call.session, call.turn))
    return planned


def plan_calls(scenario: Scenario, calls: int, seed: int, start: float = 0.0) -> list[PlannedCall]:
    """The first `calls` calls of the scenario's traffic from scenario time `start`, in time order."""
    rate = scenario.calls_per_hour / 3600.0
    horizon = 1.25 * calls / rate + 60.0
    while True:
        planned = _window(scenario, seed, start, start + horizon)
        if len(planned) >= calls or horizon > 1e12:
            return planned[:calls]
        horizon *= 2
