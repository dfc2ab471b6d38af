"""The evaluation budget's bookkeeping against modelled worlds whose right answer is known: pairs priced from what
they cost, runs that keep the candidate's cache warm, and the judge asked only when its expected cost fits."""

from __future__ import annotations

import pytest

from otel_claude._evaluation_spend import EvaluationSpend

TASK = "classify"
BUDGET = 0.05
CALL = 1.0  # what each of the task's own calls costs


def run_world(calls: int, cost_of: object, prior: float = 0.0) -> tuple[int, float, float]:
    """Every call of the task is sampled; `cost_of(warm)` is what a pair costs when the pair before it was the
    previous sampled call (the candidate's cache is still warm) or not; `prior` is what the policy says a pair
    costs. Returns (pairs, worst overshoot of the budget at any time, spend)."""
    spend = EvaluationSpend()
    pairs = 0
    previous_admitted = False
    worst = 0.0
    for n in range(1, calls + 1):
        entry = spend.admit(TASK, BUDGET, n * CALL, prior)
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


def test_a_prior_keeps_a_new_process_within_the_budget_from_its_first_pair() -> None:
    """Without a prior, a process that has just started prices pairs at nothing and admits the first at once, with
    nothing spent on the task; with the policy's prior it waits until the budget holds one."""
    _, worst, _ = run_world(99, lambda warm: 5.0)
    assert worst >= 5.0 - BUDGET * CALL  # the first call's pair: a whole pair over a budget of 0.05
    pairs, worst, _ = run_world(99, lambda warm: 5.0, prior=5.0)
    assert pairs == 0 and worst <= 0  # 99 calls hold 4.95 of budget: less than one pair
    pairs, worst, spent = run_world(2_000, lambda warm: 5.0, prior=5.0)
    assert spent <= BUDGET * 2_000 * CALL
    assert pairs >= 0.9 * BUDGET * 2_000 * CALL / 5.0
    assert worst <= 2.5  # later, at most the half pair a run's trial risks (the prior of a warm cache: one in two)


def test_calls_starting_together_in_a_new_process_share_what_the_prior_allows() -> None:
    """An async service's first burst: 200 calls sampled before any has finished or cost anything."""
    spend = EvaluationSpend()
    assert [spend.admit(TASK, BUDGET, 0.0, 0.5) for _ in range(200)].count(None) == 200
    admitted = [spend.admit(TASK, BUDGET, 40.0, 0.5) for _ in range(200)]  # 40 of spend: a budget of 2
    assert len([a for a in admitted if a is not None]) == 4


def test_judge_is_asked_only_when_its_expected_cost_fits() -> None:
    spend = EvaluationSpend()
    first = spend.admit(TASK, 1.0, 1.0, 0.0)
    assert first is not None
    spend.add("haiku", TASK, "shadow", 0.1, first)
    assert spend.may_judge(first, 1.0, 1.0, 0.0)  # nothing known about the judge's cost, and no prior
    assert not spend.may_judge(first, 1.0, 1.0, 0.5)  # a prior of 0.5 a judge call: 0.1 + 2 x 0.5 > 1.0
    assert spend.may_judge(first, 1.0, 1.0, 0.45)
    spend.add("opus", TASK, "judge", 0.3, first)
    spend.add("opus", TASK, "judge", 0.3, first)
    spend.finish(first, completed=True)
    second = spend.admit(TASK, 1.0, 2.0, 0.0)
    assert second is not None
    spend.add("haiku", TASK, "shadow", 0.1, second)
    # Spent 0.8 of a budget of 2.0: two more judge calls (0.6) fit; with a task spend of 1.3 they would not.
    assert spend.may_judge(second, 1.0, 2.0, 5.0)  # the prior no longer counts: judge calls have cost 0.3
    assert not spend.may_judge(second, 1.0, 1.3, 0.0)
    assert spend.spent(TASK) == pytest.approx(0.8)


def test_pairs_of_an_untried_run_in_flight_are_held_at_a_cold_pairs_price() -> None:
    """Before any continuing pair has shown whether the candidate's cache stays warm, a run prices its pairs as
    half likely warm; with several of them in flight, each held at that price, all of them missing the cache would
    overspend by more than a pair. Held at a cold pair's price until they finish, they cannot."""
    spend = EvaluationSpend()
    first = spend.admit(TASK, 1.0, 10.0, 0.0)
    assert first is not None
    spend.add("haiku", TASK, "shadow", 10.0, first)  # a cold pair: what the next ones may cost too
    spend.finish(first, completed=True)
    in_flight = []
    while (entry := spend.admit(TASK, 1.0, 40.0, 0.0)) is not None:
        in_flight.append(entry)
    # Spent 10 of a budget of 40; the first of the run leaves room for it (5 more), each is held at 10.
    assert len(in_flight) == 3
    for entry in in_flight:  # every one of them cold after all
        spend.add("haiku", TASK, "shadow", 10.0, entry)
        spend.finish(entry, completed=True)
    assert spend.spent(TASK) <= 40.0


def test_once_runs_have_shown_a_warm_cache_pairs_in_flight_are_held_at_what_they_cost() -> None:
    """Forty continuing pairs found the cache warm (1 each) after cold starts (10 each): pairs in flight are held
    near a warm pair's price, so a run keeps going while earlier pairs are still out."""
    spend = EvaluationSpend()
    for continuing in [False] + [True] * 40:
        entry = spend.admit(TASK, 1.0, 10_000.0, 0.0)
        assert entry is not None and entry.continuing == continuing
        spend.add("haiku", TASK, "shadow", 1.0 if continuing else 10.0, entry, read_cache=continuing)
        spend.finish(entry, completed=True)
    held = spend.admit(TASK, 1.0, 10_000.0, 0.0)
    assert held is not None and held.continuing
    assert held.reserved == pytest.approx((40 * 1.0 + 2 * 10.0) / 42)  # 40 warm and 2 cold in 42
