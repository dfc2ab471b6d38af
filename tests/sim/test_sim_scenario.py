"""Scenario files: the format, its errors, and the per-request ground truth the simulator answers from."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import anthropic
import pytest
import yaml

from claude_sim import ScenarioError, SimServer, load_scenario
from claude_sim._prefix import flatten
from claude_sim._scenario_file import SHIPPED
from claude_sim.workload import grade, plan_jobs


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
    # Older files keep their meaning: every graded call scored at once, single turns, steady arrivals.
    assert task.feedback.share == 1.0 and task.feedback.delay.quantile(0.9) == 0.0 and task.session is None
    assert task.arrivals.shape == "poisson" and spec.calls_per_hour == 3600


def test_every_new_field_loads(tmp_path: Path) -> None:
    data = yaml.safe_load(MINIMAL)
    data["traffic"] = {"calls_per_hour": 120}
    data["judge"] = {"accuracy": 0.7, "position_bias": 0.4, "tie_rate": 0.1}
    data["tasks"]["t"].update(
        tools={"count": 2, "tokens": 400},
        quality={"default": 0.5, "claude-haiku-4-5": {0: 0.9, 2000: 0.6}},
        output={"default": {"median": 50}, "claude-haiku-4-5": {0: {"median": 40}, 3000: {"median": 90}}},
        arrivals={"shape": "bursts", "share": 0.7, "every_s": 900, "length_s": 30},
        feedback={"share": 0.0, "delay_s": {"median": 60, "sigma": 1}, "kind": "graded", "noise": 0.2},
        errors={"correlation": 0.3, "same_wrong": 0.8},
        session={"turns": {"median": 5, "max": 9}, "think_s": {"median": 30}, "agent": True,
                 "tool_result": {"median": 200}},
    )
    spec = load_scenario(write(tmp_path, yaml.safe_dump(data)))
    task = spec.tasks["t"]
    assert spec.calls_per_hour == 120 and spec.judge.accuracy == 0.7
    assert task.quality_for("claude-haiku-4-5", 1999) == 0.9 and task.quality_for("claude-haiku-4-5", 2000) == 0.6
    assert task.output_for("claude-haiku-4-5", 5000).median == 90 and task.output_for("other", 5000).median == 50
    assert task.arrivals.burst_share == 0.7 and task.feedback.kind == "graded" and task.feedback.share == 0.0
    assert task.errors.same_wrong == 0.8 and task.session is not None and task.session.agent


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["tasks"]["t"].pop("quality"), "tasks.t.quality: expected a mapping"),
    (lambda d: d["tasks"]["t"]["quality"].pop("default"), "tasks.t.quality: needs a 'default' entry"),
    (lambda d: d["tasks"]["t"]["quality"].update(x=1.5), "tasks.t.quality.x.p: 1.5 is outside"),
    (lambda d: d["tasks"]["t"]["output"]["default"].update(median="long"), "tasks.t.output.default.median"),
    (lambda d: d["tasks"]["t"].update(colour="red"), "tasks.t: unknown key(s) colour"),
    (lambda d: d["baseline"].pop("max_tokens"), "baseline.max_tokens: required"),
    (lambda d: d["tasks"]["t"].update(answer={"kind": "tool"}), "tasks.t.tools.count: answer kind 'tool'"),
    (lambda d: d["tasks"]["t"]["quality"].update(x={500: 0.9}), "tasks.t.quality.x: input-size bands must start"),
    (lambda d: d["tasks"]["t"]["quality"].update(x={"0": 0.9}), "tasks.t.quality.x: expected a value, or a"),
    (lambda d: d["tasks"]["t"].update(arrivals={"shape": "weekly"}), "tasks.t.arrivals.shape: expected one of"),
    (lambda d: d["tasks"]["t"].update(arrivals={"shape": "poisson", "swing": 1}),
     "tasks.t.arrivals: unknown key(s) swing"),
    (lambda d: d["tasks"]["t"].update(feedback={"share": 2}), "tasks.t.feedback.share: 2 is outside"),
    (lambda d: d["tasks"]["t"].update(feedback={"delay_s": {"median": -1}}), "tasks.t.feedback.delay_s.median"),
    (lambda d: d["tasks"]["t"].update(errors={"correlation": 1.5}), "tasks.t.errors.correlation: 1.5"),
    (lambda d: d["tasks"]["t"].update(session={"think_s": {"median": 5}}), "tasks.t.session.turns: required"),
    (lambda d: d["tasks"]["t"].update(session={"turns": {"median": 3}, "think_s": {"median": 5}, "agent": True}),
     "tasks.t.session.agent: an agent needs tools.count >= 2"),
    (lambda d: d.update(traffic={"calls_per_hour": 0}), "traffic.calls_per_hour: 0 is outside"),
    (lambda d: d.update(judge={"accuracy": 0.1, "position_bias": 0.9}), "judge: (1 - accuracy)"),
    (lambda d: d.update(judge={"verbosity": 1}), "top level.judge: unknown key(s) verbosity"),
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


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenarios_load_and_say_their_right_policy(name: str) -> None:
    assert load_scenario(name).tasks
    text = resources.files("claude_sim").joinpath("scenarios", f"{name}.yaml").read_text(encoding="utf-8")
    assert "What the right policy is" in text and "HEADER-POLICY" not in text


def test_decisions_are_deterministic_per_seed(scenario) -> None:
    first = [scenario.decide(0, "extract", index, "claude-opus-4-6", 3000) for index in range(50)]
    assert first == [scenario.decide(0, "extract", index, "claude-opus-4-6", 3000) for index in range(50)]
    assert first != [scenario.decide(1, "extract", index, "claude-opus-4-6", 3000) for index in range(50)]


def test_simulator_answers_follow_the_scenario(scenario) -> None:
    jobs = [job for job in plan_jobs(scenario, 60, seed=4, stream_share=0.0) if job.task in ("classify", "extract")]
    with SimServer(scenario=scenario, seed=4) as sim:
        client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=0)
        for job in jobs[:12]:
            message = client.messages.create(**job.body, extra_headers=job.headers)
            decision = scenario.decide(4, job.task, job.case, "claude-sonnet-4-6", flatten(job.body).total_tokens)
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


def test_batch_requests_carry_the_case_in_metadata(scenario) -> None:
    from sim_helpers import requires

    job = next(job for job in plan_jobs(scenario, 40, seed=2, stream_share=0.0) if job.task == "classify")
    params = {**job.body, "metadata": {"user_id": f"sim:{job.task}:{job.case}"}}
    with SimServer(scenario=scenario, seed=2) as sim:
        client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=0)
        requires(client, "messages.batches")
        batch = client.messages.batches.create(requests=[{"custom_id": "one", "params": params}])
        (entry,) = list(client.messages.batches.results(batch.id))
    decision = scenario.decide(2, job.task, job.case, "claude-sonnet-4-6", flatten(job.body).total_tokens)
    assert grade(entry.result.message, job.expected) == decision.correct
    assert entry.result.message.content[0].text.startswith("ANSWER: ")
