"""The oracle against the simulator: a run through the real SDK, instrumentor, policy engine and simulator costs
exactly what the oracle's replay of the same plan says, and sits within sampling error of the oracle's
expectation; plus what the oracle reads from policies and charges for evaluation traffic."""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import pytest
import yaml

from claude_sim import ScenarioClock, SimServer, load_scenario
from claude_sim._oracle_report import main as oracle_main
from claude_sim._scenario_file import SHIPPED, parse_scenario
from claude_sim.oracle import (
    Evaluation,
    SizeRouted,
    TaskChoice,
    best_policy,
    choices_from_policy,
    evaluate,
    evaluate_task,
    policy_document,
)
from claude_sim.workload import run_workload

SONNET, HAIKU = "claude-sonnet-4-6", "claude-haiku-4-5"
CALLS = 240  # per scenario: enough for every task to appear, small enough for CI
# A policy per shipped scenario that uses what the scenario is about: routing, shared-prefix and conversation
# caching, a raised cap, an input-size split.
POLICIES: dict[str, dict[str, TaskChoice | SizeRouted]] = {
    "default": {
        "classify": TaskChoice(HAIKU, 300, "1h"),
        "extract": TaskChoice(SONNET, 4096, "1h"),
        "summarize": TaskChoice(HAIKU, 4096),
        "code": TaskChoice(SONNET, 7200, "1h", "5m"),
    },
    "chat": {
        "chat": SizeRouted(((0, 4000, TaskChoice(HAIKU, 2048, None, "5m")),), TaskChoice(SONNET, 2048, "5m", "5m")),
        "title": TaskChoice(HAIKU, 64),
    },
    "agent": {"resolve": TaskChoice(SONNET, 4096, "1h", "5m"), "handoff": TaskChoice(HAIKU, 4096)},
    "internal": {"handbook_qa": TaskChoice(HAIKU, 4096, "1h")},
}


@pytest.mark.parametrize("name", SHIPPED)
def test_runs_match_the_oracle(name: str, tmp_path: Path) -> None:
    scenario = load_scenario(name)
    choices = POLICIES[name]
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(policy_document(scenario, choices)), encoding="utf-8")
    clock = ScenarioClock(0, fast_forward=True)
    with SimServer(scenario=scenario, seed=5, clock=clock, record=False) as sim:
        run = run_workload(sim.base_url, scenario, calls=CALLS, workers=3, seed=11, policy=str(policy), clock=clock)
    assert run.overall.errors == 0

    # 1. The oracle's replay of this very run's plan: the same calls, costs, answers, truncations and cache traffic.
    replay = evaluate(scenario, choices, calls=CALLS, seed=5, windows=[11])
    for task, measured in run.per_task.items():
        predicted = replay.per_task[task]
        assert measured.calls == predicted.calls, task
        assert measured.cost_per_call == pytest.approx(predicted.cost_per_call, rel=1e-6), task
        assert measured.quality == pytest.approx(predicted.realized_quality), task
        assert measured.truncation_rate == pytest.approx(predicted.truncation_rate), task
        assert measured.cache_hit_rate == pytest.approx(predicted.cache_hit_rate), task

    # 2. The oracle's expectation over many runs of this size: the run is one draw from it. Stated tolerance: four
    # standard errors of the difference (the run's calls and the oracle's samples taken as independent).
    expected = evaluate(scenario, choices, calls=CALLS, seed=5, samples=1500)
    shares = {task: spec.share / sum(t.share for t in scenario.tasks.values()) for task, spec in scenario.tasks.items()}
    variance = sum(shares[t] ** 2 * (replay.per_task[t].cost_se ** 2 + expected.per_task[t].cost_se ** 2)
                   for t in scenario.tasks)
    assert abs(replay.cost_per_call - expected.cost_per_call) < 4 * math.sqrt(variance)
    assert abs(run.overall.quality - expected.quality) < 4 * math.sqrt(expected.quality * (1 - expected.quality)
                                                                        / run.overall.calls)


def test_evaluation_spend_is_reported_apart_and_scales_with_its_share() -> None:
    scenario = load_scenario("internal")
    options = dict(calls=600, samples=600)
    plain = evaluate_task(scenario, "handbook_qa", TaskChoice(SONNET, 4096, "1h"), **options)
    half = evaluate_task(scenario, "handbook_qa", TaskChoice(SONNET, 4096, "1h", evaluation=Evaluation(HAIKU, 0.5)),
                         **options)
    full = evaluate_task(scenario, "handbook_qa", TaskChoice(SONNET, 4096, "1h", evaluation=Evaluation(HAIKU, 1.0)),
                         **options)
    judged = evaluate_task(scenario, "handbook_qa",
                           TaskChoice(SONNET, 4096, "1h", evaluation=Evaluation(HAIKU, 1.0, judge_model=SONNET)),
                           **options)
    capped = evaluate_task(scenario, "handbook_qa",
                           TaskChoice(SONNET, 4096, "1h", evaluation=Evaluation(HAIKU, 1.0, budget=0.1)), **options)
    haiku = evaluate_task(scenario, "handbook_qa", TaskChoice(HAIKU, 4096, "1h"), **options)
    assert plain.evaluation_cost_per_call == 0.0
    assert half.cost_per_call == full.cost_per_call == plain.cost_per_call  # the served calls are untouched
    assert full.evaluation_cost_per_call == pytest.approx(haiku.cost_per_call, rel=0.05)  # every call re-sent
    # Half the calls, each dearer: a thinner stream of shadow calls finds the candidate's cache cold more often.
    assert 0.4 < half.evaluation_cost_per_call / full.evaluation_cost_per_call < 0.95
    # Free text in each model's own words never settles by equality: every pair goes to the judge, twice.
    assert judged.evaluation_cost_per_call > 2 * full.evaluation_cost_per_call
    assert capped.evaluation_cost_per_call == pytest.approx(0.1 * capped.cost_per_call)


def test_short_answers_reach_the_judge_only_when_they_differ() -> None:
    source = resources.files("claude_sim").joinpath("scenarios", "default.yaml").read_text(encoding="utf-8")
    line = parse_scenario(source, "line.yaml")  # classify answers with just the label line
    prose = parse_scenario(source.replace("form: line", "form: prose"), "prose.yaml")

    def judge_spend(scenario) -> float:
        options = dict(calls=600, samples=600)
        shadowed = evaluate_task(scenario, "classify", TaskChoice(
            SONNET, 4096, "1h", evaluation=Evaluation(HAIKU, 1.0)), **options)
        judged = evaluate_task(scenario, "classify", TaskChoice(
            SONNET, 4096, "1h", evaluation=Evaluation(HAIKU, 1.0, judge_model=SONNET)), **options)
        return judged.evaluation_cost_per_call - shadowed.evaluation_cost_per_call

    # Equal label lines settle by equality; only the ~10% of pairs that disagree are judged. In prose, all are.
    assert 0 < 5 * judge_spend(line) < judge_spend(prose)


def test_evaluate_rules_are_read_from_policies() -> None:
    scenario = load_scenario("internal")
    rule = {"task": "handbook_qa", "evaluate": {"model": HAIKU, "share": 0.2, "budget": 0.1, "max_tokens": 900,
                                                "judge": {"model": SONNET}}}
    read = choices_from_policy(scenario, {"schema_version": 1, "version": "x", "rules": [rule]})["handbook_qa"]
    assert read.evaluation == Evaluation(HAIKU, 0.2, judge_model=SONNET, budget=0.1, max_tokens=900)
    assert policy_document(scenario, {"handbook_qa": read})["rules"][0]["evaluate"] == rule["evaluate"]


def test_a_1h_conversation_breakpoint_cannot_follow_a_5m_prefix() -> None:
    with pytest.raises(ValueError, match="1h"):
        TaskChoice(SONNET, 100, "5m", "1h")


def test_size_routed_policies_round_trip_through_policy_files(tmp_path: Path) -> None:
    scenario = load_scenario("chat")
    choices = POLICIES["chat"]
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy_document(scenario, choices)), encoding="utf-8")
    read = choices_from_policy(scenario, path)
    chat = read["chat"]
    assert isinstance(chat, SizeRouted) and chat.rules[0][:2] == (0, 4000)
    assert chat.rules[0][2].model == HAIKU and chat.default.model == SONNET and chat.default.cache_ttl == "5m"
    assert chat.at(3999).model == HAIKU and chat.at(4000).model == SONNET
    assert read["title"] == choices["title"]
    assert read["chat"] == choices["chat"]  # cache.conversation.ttl included


def test_caching_below_the_minimum_costs_nothing_extra() -> None:
    scenario = load_scenario()
    plain = evaluate_task(scenario, "summarize", TaskChoice(SONNET, 4096), samples=200)
    cached = evaluate_task(scenario, "summarize", TaskChoice(SONNET, 4096, "5m"), samples=200)
    assert cached.cost_per_call == plain.cost_per_call and cached.cache_hit_rate == 0.0


KNOWN = """
name: known
baseline: {model: claude-sonnet-4-6, max_tokens: 1000}
traffic: {calls_per_hour: 600}
tasks:
  easy:      # Haiku as good, a long prompt every few seconds: Haiku, cached for 5 minutes
    share: 0.6
    system: {tokens: 5000}
    input: {median: 100, sigma: 0.3}
    output: {default: {median: 20, sigma: 0.3}}
    quality: {default: 0.5, claude-sonnet-4-6: 0.95, claude-haiku-4-5: 0.95}
  rare:      # only Sonnet will do, the prompt comes back every ten minutes, answers overrun 1,000 tokens
    share: 0.01
    system: {tokens: 3000}
    input: {median: 100, sigma: 0.3}
    output: {default: {median: 600, sigma: 0.6}}
    quality: {default: 0.5, claude-sonnet-4-6: 0.95, claude-haiku-4-5: 0.4}
  talk:      # Haiku only while the conversation is short; users answer within a minute
    share: 0.39
    system: {tokens: 1200}
    input: {median: 60, sigma: 0.5}
    output: {default: {median: 300, sigma: 0.4, max: 900}}
    quality: {default: 0.5, claude-sonnet-4-6: 0.95, claude-haiku-4-5: {0: 0.95, 3000: 0.4}}
    session: {turns: {median: 6, sigma: 0.3, max: 12}, think_s: {median: 30, sigma: 0.5, max: 240}}
"""


def test_the_best_policy_is_the_one_the_scenario_was_built_for(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "known.yaml"
    path.write_text(KNOWN, encoding="utf-8")
    scenario = load_scenario(path)
    best = best_policy(scenario, calls=600, samples=300, candidates=[SONNET, HAIKU])
    assert best["easy"].model == HAIKU and best["easy"].cache_ttl == "5m"
    assert best["rare"].model == SONNET and best["rare"].cache_ttl == "1h" and best["rare"].max_tokens > 1000
    talk = best["talk"]
    assert isinstance(talk, SizeRouted) and talk.rules[0][:2] == (0, 3000)
    assert talk.rules[0][2].model == HAIKU and talk.default.model == SONNET
    assert talk.default.conversation_ttl == "5m"
    assert oracle_main([str(path), "--calls", "600", "--samples", "200"]) == 0
    printed = capsys.readouterr().out
    assert "- rare: claude-sonnet-4-6" in printed and "all tasks:" in printed
