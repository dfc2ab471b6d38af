"""The evaluation budget's bookkeeping against modelled worlds whose right answer is known: pairs priced from what
they cost, runs that keep the candidate's cache warm, and the judge asked only when its expected cost fits."""

from __future__ import annotations

import pytest

from otel_claude._evaluation_spend import EvaluationSpend

TASK = "classify"
BUDGET = 0.05
CALL = 1.0  # what each of the task's own calls costs


def run_world(calls: int, cost_of: object) -> tuple[int, float, float]:
    """Every call of the task is sampled; `cost_of(warm)` is what a pair costs when the pair before it was the
    previous sampled call (the candidate's cache is still warm) or not. Returns (pairs, worst overshoot of the
    budget at any time, spend)."""
    spend = EvaluationSpend()
    pairs = 0
    previous_admitted = False
    worst = 0.0
    for n in range(1, calls + 1):
        entry = spend.admit(TASK, BUDGET, n * CALL)
        if entry is None:
            previous_admitted = False
            continue
        cost = cost_of(previous_admitted)  # type: ignore[operator]
        spend.add("haiku", TASK, "shadow", cost, entry, read_cache=previous_admitted and cost < 5)
        spend.finish(entry, completed=True)
        pairs += 1
        previous_admitted = True
        worst = max(worst, spend.spent(TASK) - BUDGET * n * CALL)
    return pairs, worst, spend.spent(TASK)


def test_runs_of_warm_pairs_buy_many_times_the_pairs_of_cold_ones() -> None:
    """A cold pair writes the cache (10), a warm one reads it (0.3): admitted one at a time as the budget refills,
    every pair would be cold, 0.05 x 10,000 / 10 = 50 pairs."""
    pairs, worst, spent = run_world(10_000, lambda warm: 0.3 if warm else 10.0)
    assert pairs >= 5 * 50
    assert spent <= BUDGET * 10_000 * CALL
    assert worst <= 10.0  # never more than one pair over, even while it learns what pairs cost


def test_without_a_cache_pairs_are_admitted_as_the_budget_allows() -> None:
    """Every pair costs the same (5): runs buy nothing, and the budget still buys about what it can."""
    pairs, worst, spent = run_world(10_000, lambda warm: 5.0)
    assert spent <= BUDGET * 10_000 * CALL
    assert 0.9 * BUDGET * 10_000 / 5 <= pairs <= BUDGET * 10_000 / 5 + 1
    assert worst <= 5.0


def test_judge_is_asked_only_when_its_expected_cost_fits() -> None:
    spend = EvaluationSpend()
    first = spend.admit(TASK, 1.0, 1.0)
    assert first is not None
    spend.add("haiku", TASK, "shadow", 0.1, first)
    assert spend.may_judge(first, 1.0, 1.0)  # nothing known about the judge's cost yet
    spend.add("opus", TASK, "judge", 0.3, first)
    spend.add("opus", TASK, "judge", 0.3, first)
    spend.finish(first, completed=True)
    second = spend.admit(TASK, 1.0, 2.0)
    assert second is not None
    spend.add("haiku", TASK, "shadow", 0.1, second)
    # Spent 0.8 of a budget of 2.0: two more judge calls (0.6) fit; with a task spend of 1.3 they would not.
    assert spend.may_judge(second, 1.0, 2.0)
    assert not spend.may_judge(second, 1.0, 1.3)
    assert spend.spent(TASK) == pytest.approx(0.8)
