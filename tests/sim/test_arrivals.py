"""The planned schedule follows each task's arrival process, traffic share and session shape (no clock involved)."""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter, defaultdict

import pytest

from claude_sim._plan import plan_calls
from claude_sim._scenario_file import parse_scenario

SCENARIO = """
baseline: {model: claude-sonnet-4-6, max_tokens: 1000}
traffic: {calls_per_hour: 600}
tasks:
  steady:
    share: 0.5
    input: {median: 100}
    output: {default: {median: 50}}
    quality: {default: 0.9}
  daily:
    share: 0.2
    input: {median: 100}
    output: {default: {median: 50}}
    quality: {default: 0.9}
    arrivals: {shape: daily, peak_hour: 14, swing: 0.8}
  bursty:
    share: 0.1
    input: {median: 100}
    output: {default: {median: 50}}
    quality: {default: 0.9}
    arrivals: {shape: bursts, share: 0.7, every_s: 1800, length_s: 60}
  chat:
    share: 0.2
    input: {median: 100}
    output: {default: {median: 50}}
    quality: {default: 0.9}
    session: {turns: {median: 5, sigma: 0.6, max: 20}, think_s: {median: 40, sigma: 1.0, max: 1800}}
"""


@pytest.fixture(scope="module")
def scenario():
    return parse_scenario(SCENARIO, "arrivals.yaml")


@pytest.fixture(scope="module")
def plan(scenario):
    return plan_calls(scenario, 30_000, seed=3)


def _times(plan, task: str) -> list[float]:
    return [call.at for call in plan if call.task == task]


def test_calls_come_in_time_order_at_the_scenario_rate_and_shares(scenario, plan) -> None:
    times = [call.at for call in plan]
    assert times == sorted(times)
    hours = times[-1] / 3600
    assert abs(len(plan) / hours - 600) < 600 * 0.05
    shares = Counter(call.task for call in plan)
    for name, task in scenario.tasks.items():
        assert abs(shares[name] / len(plan) - task.share) < 0.02, name


def test_a_longer_plan_only_adds_later_calls(scenario, plan) -> None:
    assert plan_calls(scenario, 5000, seed=3) == plan[:5000]
    assert plan_calls(scenario, 5000, seed=4) != plan[:5000]


def test_steady_arrivals_are_poisson(plan) -> None:
    times = _times(plan, "steady")
    gaps = [b - a for a, b in itertools.pairwise(times)]
    mean = statistics.fmean(gaps)
    assert abs(mean - 3600 / 300) < 0.05 * 12  # 300 calls an hour
    assert 0.93 < statistics.stdev(gaps) / mean < 1.07  # exponential gaps: coefficient of variation 1
    within = sum(gap < mean for gap in gaps) / len(gaps)
    assert abs(within - (1 - math.exp(-1))) < 0.02


def test_a_daily_cycle_follows_its_rate_curve(scenario, plan) -> None:
    by_hour = Counter(int(t // 3600) % 24 for t in _times(plan, "daily"))
    arrivals = scenario.tasks["daily"].arrivals
    weights = {hour: arrivals.factor(hour * 3600 + 1800) for hour in range(24)}
    total = sum(by_hour.values())
    for hour in range(24):
        expected = total * weights[hour] / sum(weights.values())
        assert abs(by_hour[hour] - expected) < 4 * math.sqrt(expected) + 0.1 * expected, hour
    assert by_hour[14] > 5 * by_hour[2]  # (1 + 0.8) / (1 - 0.8) = 9 at the extremes


def test_bursts_cluster_calls(plan) -> None:
    def dispersion(task: str) -> float:
        times = _times(plan, task)
        bins = Counter(int(t // 60) for t in times)
        counts = [bins.get(b, 0) for b in range(int(times[-1] // 60))]
        return statistics.pvariance(counts) / statistics.fmean(counts)

    assert 0.85 < dispersion("steady") < 1.15  # Poisson counts: variance = mean
    assert dispersion("bursty") > 10
    times = _times(plan, "bursty")
    bins = Counter(int(t // 60) for t in times)
    busy = sum(count for count in bins.values() if count >= 5)  # background traffic alone is ~1 a minute
    assert abs(busy / len(times) - 0.7) < 0.08


def test_sessions_have_their_turns_and_think_times(scenario, plan) -> None:
    sessions: dict[int, list] = defaultdict(list)
    for call in plan:
        if call.task == "chat":
            sessions[call.session].append(call)
    complete = [calls for calls in sessions.values() if len(calls) == calls[0].turns]
    turns = [calls[0].turns for calls in complete]
    assert abs(statistics.median(turns) - 5) <= 1 and max(turns) <= 20 and min(turns) >= 1
    gaps = [later.at - earlier.at for calls in complete for earlier, later in itertools.pairwise(calls)]
    assert abs(statistics.median(gaps) - 40) < 4
    assert all(call.turn == index + 1 for calls in complete for index, call in enumerate(calls))
    assert max(gaps) <= 1800
