"""Scenario files, per-case ground truth and the oracle a tuner is scored against."""

from __future__ import annotations

from pathlib import Path

import anthropic
import pytest
import yaml

from claude_sim import ScenarioError, SimServer, load_scenario
from claude_sim.oracle import TaskChoice, best_policy, choices_from_policy, evaluate, evaluate_task, policy_document
from claude_sim.workload import grade, plan_jobs

SAMPLES = 600  # enough for the oracle's choices on the default scenario to be stable, small enough to be quick


@pytest.fixture(scope="module")
def scenario():
    return load_scenario()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = """
baseline: {model: claude-sonnet-4-6, max_tokens: 1000}
tasks:
  t:
    share: 1
    input: {median: 100}
    output: {default: {median: 50, sigma: 0.5}}
    quality: {default: 0.5}
"""


def test_minimal_scenario_loads_with_defaults(tmp_path: Path) -> None:
    spec = load_scenario(write(tmp_path, MINIMAL))
    task = spec.tasks["t"]
    assert spec.name == "s" and task.labels == 10 and task.answer_kind == "text" and task.system_variants == 1


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["tasks"]["t"].pop("quality"), "tasks.t.quality: expected a mapping"),
    (lambda d: d["tasks"]["t"]["quality"].pop("default"), "tasks.t.quality: needs a 'default' entry"),
    (lambda d: d["tasks"]["t"]["quality"].update(x=1.5), "tasks.t.quality.x.p: 1.5 is outside"),
    (lambda d: d["tasks"]["t"]["output"]["default"].update(median="long"), "tasks.t.output.default.median"),
    (lambda d: d["tasks"]["t"].update(colour="red"), "tasks.t: unknown key(s) colour"),
    (lambda d: d["baseline"].pop("max_tokens"), "baseline.max_tokens: required"),
    (lambda d: d["tasks"]["t"].update(answer={"kind": "tool"}), "tasks.t.tools.count: answer kind 'tool'"),
])
def test_bad_scenarios_name_file_and_field(tmp_path: Path, edit, message: str) -> None:
    data = yaml.safe_load(MINIMAL)
    edit(data)
    path = write(tmp_path, yaml.safe_dump(data))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(write(tmp_path, "tasks: [unclosed"))


def test_decisions_are_deterministic_and_monotone_in_quality(scenario) -> None:
    for index in range(200):
        strong = scenario.decide(0, "extract", index, "claude-opus-4-6")
        weak = scenario.decide(0, "extract", index, "claude-haiku-4-5")
        assert strong == scenario.decide(0, "extract", index, "claude-opus-4-6")
        assert weak.correct <= strong.correct  # common random numbers: what the weak model gets right, so does opus


def test_simulator_answers_follow_the_scenario(scenario) -> None:
    jobs = [job for job in plan_jobs(scenario, 60, seed=4, stream_share=0.0) if job.task in ("classify", "extract")]
    with SimServer(scenario=scenario, seed=4) as sim:
        client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=0)
        for job in jobs[:12]:
            message = client.messages.create(**job.body, extra_headers=job.headers)
            decision = scenario.decide(4, job.task, job.case, "claude-sonnet-4-6")
            assert grade(message, job.expected) == decision.correct
            assert message.usage.output_tokens == min(decision.output_tokens, job.body["max_tokens"]) or \
                message.stop_reason == "tool_use"
            if job.task == "extract":
                assert message.stop_reason == "tool_use" and message.content[-1].name == "record_answer"


def test_unknown_task_header_is_a_400(scenario) -> None:
    with SimServer(scenario=scenario) as sim:
        client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=0)
        with pytest.raises(anthropic.BadRequestError, match="unknown task 'nope'"):
            client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}],
                                   extra_headers={"x-sim-task": "nope", "x-sim-case": "1"})


def test_oracle_finds_the_non_obvious_policy(scenario) -> None:
    best = best_policy(scenario, samples=SAMPLES)
    assert best["classify"].model == "claude-haiku-4-5" and best["classify"].cache_ttl == "5m"
    assert best["extract"].model == "claude-sonnet-4-6" and best["extract"].cache_ttl == "5m"
    assert best["summarize"].model == "claude-haiku-4-5" and best["summarize"].cache_ttl is None
    assert best["code"].model == "claude-sonnet-4-6" and best["code"].max_tokens > scenario.baseline.max_tokens
    assert best["research"].cache_ttl is None  # 400 tenant prompts: rarely reused, writes would not pay back
    baseline = evaluate(scenario, {}, samples=SAMPLES)
    tuned = evaluate(scenario, best, samples=SAMPLES)
    assert tuned.cost_per_call < 0.6 * baseline.cost_per_call
    assert tuned.quality >= baseline.quality - 0.02


def test_caching_below_minimum_costs_nothing_extra(scenario) -> None:
    plain = evaluate_task(scenario, "summarize", TaskChoice("claude-sonnet-4-6", 4096), samples=200)
    cached = evaluate_task(scenario, "summarize", TaskChoice("claude-sonnet-4-6", 4096, "5m"), samples=200)
    assert cached.cost_per_call == plain.cost_per_call and cached.cache_hit_rate == 0.0


def test_policy_file_round_trip(scenario, tmp_path: Path) -> None:
    best = best_policy(scenario, samples=200)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy_document(scenario, best)), encoding="utf-8")
    assert choices_from_policy(scenario, path) == best


def test_batch_requests_carry_the_case_in_metadata(scenario) -> None:
    from sim_helpers import requires

    job = next(job for job in plan_jobs(scenario, 40, seed=2, stream_share=0.0) if job.task == "classify")
    params = {**job.body, "metadata": {"user_id": f"sim:{job.task}:{job.case}"}}
    with SimServer(scenario=scenario, seed=2) as sim:
        client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=0)
        requires(client, "messages.batches")
        batch = client.messages.batches.create(requests=[{"custom_id": "one", "params": params}])
        (entry,) = list(client.messages.batches.results(batch.id))
    decision = scenario.decide(2, job.task, job.case, "claude-sonnet-4-6")
    assert grade(entry.result.message, job.expected) == decision.correct
    assert entry.result.message.content[0].text.startswith("ANSWER: ")
