"""Paired evaluation through the real SDK against the simulator: the caller's side is untouched, the candidate's
copy is traced as a shadow child of the call, the verdict joins the call, and the spend is evaluation spend."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from evaluation_support import HAIKU, SONNET, by_role, evaluate_policy, metric_total, verdicts

import otel_claude
from claude_sim import SimServer

SYSTEM = "You label support tickets with one of twelve labels. " * 20
QUESTION = "my parcel arrived crushed and the receipt is missing"
EXTRACT_TOOL = {"name": "record", "description": "record the extracted field",
                "input_schema": {"type": "object", "properties": {"answer": {"type": "string"}},
                                 "required": ["answer"]}}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(scenario="default", seed=3) as server:
        yield server


@pytest.fixture
def instrument(sim, telemetry):  # type: ignore[no-untyped-def]
    def go(policy: Any = None, **options: Any) -> None:
        sim.clear_received()
        otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                               policy=policy, policy_options={"reload_interval": 0}, **options)

    yield go
    otel_claude.uninstrument()


def _args(case: int, task: str = "classify", **extra: Any) -> dict[str, Any]:
    return {"model": SONNET, "max_tokens": 400, "system": SYSTEM,
            "messages": [{"role": "user", "content": f"{QUESTION} ({case})"}],
            "extra_headers": {"x-sim-task": task, "x-sim-case": str(case)}, **extra}


def _comparable(message: Any) -> dict[str, Any]:
    data = message.model_dump()
    data.pop("id")
    return data


def _run_sync(sim: SimServer, calls: int, task: str = "classify", stream: bool = False,
              **extra: Any) -> list[Any]:
    client = anthropic.Anthropic(base_url=sim.base_url, api_key="sk-test", max_retries=0, timeout=120)
    replies = []
    with otel_claude.task(task):
        for case in range(calls):
            if stream:
                with client.messages.stream(**_args(case, task, **extra)) as events:
                    replies.append(events.get_final_message())
            else:
                replies.append(client.messages.create(**_args(case, task, **extra)))
    assert otel_claude.wait_for_evaluations(timeout=120)
    return replies


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_caller_gets_the_same_answer_and_the_candidate_is_shadowed(sim, telemetry, instrument, stream) -> None:
    instrument()  # no policy: the reference
    plain = _run_sync(sim, 4, stream=stream)
    otel_claude.uninstrument()
    telemetry.exporter.clear()
    sim.clear_received()

    instrument(evaluate_policy(share=0.5, max_tokens=300))
    evaluated = _run_sync(sim, 4, stream=stream)
    assert [_comparable(m) for m in evaluated] == [_comparable(m) for m in plain]
    assert all(type(a) is type(b) for a, b in zip(evaluated, plain, strict=True))

    spans = telemetry.spans()
    callers, shadows, found = by_role(spans, None), by_role(spans, "shadow"), verdicts(spans)
    assert len(callers) == 4 and len(shadows) == 2 and len(found) == 2  # exactly half, by counter
    ids = {s.context.span_id: s for s in callers}
    for shadow in shadows:
        parent = ids[shadow.parent.span_id]  # a child of the application's call
        assert shadow.attributes["gen_ai.request.model"] == HAIKU
        assert shadow.attributes["gen_ai.request.stream"] is False  # the copy does not stream
        assert shadow.attributes["gen_ai.request.max_tokens"] == 300  # the candidate's own cap
        assert shadow.attributes["otel_claude.task"] == "classify"
        assert shadow.attributes["otel_claude.cost_usd"] > 0
        assert "otel_claude.policy.version" not in shadow.attributes  # never policy-rewritten
        assert parent.attributes["gen_ai.request.model"] == SONNET
    for verdict in found:
        parent = ids[verdict.parent.span_id]
        attrs = verdict.attributes
        assert attrs["gen_ai.response.id"] == parent.attributes["gen_ai.response.id"]
        assert attrs["otel_claude.evaluation.candidate_response_id"] in {
            s.attributes["gen_ai.response.id"] for s in shadows}
        assert attrs["otel_claude.evaluation.incumbent_model"] == SONNET
        assert attrs["otel_claude.evaluation.candidate_model"] == HAIKU
        assert attrs["gen_ai.evaluation.score.label"] in ("agree", "unsettled")  # texts differ in length: no judge
        assert attrs["gen_ai.evaluation.name"] == "exact"

    shadow_bodies = [r for r in sim.received if r["json"]["model"] == HAIKU]
    assert len(shadow_bodies) == 2
    for received in shadow_bodies:
        body = received["json"]
        assert "stream" not in body and body["max_tokens"] == 300 and body["system"] == SYSTEM
        assert received["headers"]["x-sim-task"] == "classify"  # the caller's extra headers go along


def test_evaluation_spend_is_not_application_spend(sim, telemetry, instrument) -> None:
    instrument(evaluate_policy(share=0.5))
    _run_sync(sim, 4)
    spans = telemetry.spans()
    app_cost = sum(s.attributes["otel_claude.cost_usd"] for s in by_role(spans, None))
    shadow_cost = sum(s.attributes["otel_claude.cost_usd"] for s in by_role(spans, "shadow"))
    assert metric_total(telemetry, "otel_claude.cost") == pytest.approx(app_cost)
    assert metric_total(telemetry, "otel_claude.evaluation.cost", **{
        "otel_claude.evaluation.role": "shadow", "gen_ai.request.model": HAIKU, "otel_claude.task": "classify",
    }) == pytest.approx(shadow_cost)
    assert metric_total(telemetry, "otel_claude.calls") == 4  # shadows are not the application's calls


def test_tool_answers_are_graded_by_name_and_arguments(sim, telemetry, instrument) -> None:
    instrument(evaluate_policy(share=0.5, task="extract"))
    replies = _run_sync(sim, 12, task="extract", tools=[EXTRACT_TOOL])
    assert all(m.stop_reason == "tool_use" for m in replies)
    found = verdicts(telemetry.spans())
    assert len(found) == 6
    names = {v.attributes["gen_ai.evaluation.name"] for v in found}
    labels = [v.attributes["gen_ai.evaluation.score.label"] for v in found]
    assert names == {"tool_call"}
    assert "agree" in labels  # both models usually pick the right label: same tool, same arguments
    shadow_answers = {json.dumps(r["json"]["tools"]) for r in sim.received if r["json"]["model"] == HAIKU}
    assert shadow_answers == {json.dumps([EXTRACT_TOOL])}


def test_user_grader_settles_what_built_ins_cannot(sim, telemetry, instrument) -> None:
    seen: list[tuple[str, str]] = []

    def answer_line(request: Any, incumbent: otel_claude.Answer, candidate: otel_claude.Answer) -> Any:
        def label(answer: otel_claude.Answer) -> str:
            return next(line for line in answer.text.splitlines() if line.startswith("ANSWER:")).strip()

        seen.append((label(incumbent), label(candidate)))
        assert request["model"] == SONNET and request["system"] == SYSTEM
        if label(incumbent) == label(candidate):
            return otel_claude.Verdict("agree")
        return otel_claude.Verdict("candidate_worse", -0.5)

    otel_claude.register_grader("classify", answer_line)
    try:
        instrument(evaluate_policy(share=0.5))
        _run_sync(sim, 8)
    finally:
        otel_claude.unregister_grader("classify")
    found = verdicts(telemetry.spans())
    assert len(found) == 4
    # Identical answers are settled by the equality grader; the user grader sees only the rest.
    by_user = [v for v in found if v.attributes["gen_ai.evaluation.name"] != "exact"]
    assert len(by_user) == len(seen) > 0
    assert all(v.attributes["gen_ai.evaluation.score.label"] == "agree" for v in found if v not in by_user)
    for verdict, (incumbent, candidate) in zip(by_user, seen, strict=True):
        attrs = verdict.attributes
        assert attrs["gen_ai.evaluation.name"] == "answer_line"
        expected = ("agree", 0.0) if incumbent == candidate else ("candidate_worse", -0.5)
        assert (attrs["gen_ai.evaluation.score.label"], attrs["gen_ai.evaluation.score.value"]) == expected


def test_failing_user_grader_is_contained_without_content_in_logs(sim, telemetry, instrument, caplog) -> None:
    def broken(request: Any, incumbent: otel_claude.Answer, candidate: otel_claude.Answer) -> Any:
        raise KeyError(incumbent.text)  # a message that quotes the answer

    # A prose task: the two answers differ in wording, so no built-in grader settles the pair before the user's.
    otel_claude.register_grader("summarize", broken)
    try:
        instrument(evaluate_policy(share=0.5, task="summarize"))
        replies = _run_sync(sim, 2, task="summarize")
    finally:
        otel_claude.unregister_grader("summarize")
    [verdict] = verdicts(telemetry.spans())
    assert verdict.attributes["gen_ai.evaluation.score.label"] == "unsettled"
    assert verdict.attributes["gen_ai.evaluation.name"] == "broken"
    assert "KeyError" in caplog.text
    assert replies[1].content[0].text[:40] not in caplog.text


async def test_async_create_and_stream(sim, telemetry, instrument) -> None:
    instrument(evaluate_policy(share=0.5))
    client = anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="sk-test", max_retries=0, timeout=120)
    with otel_claude.task("classify"):
        created = [await client.messages.create(**_args(case)) for case in range(2)]
        async with client.messages.stream(**_args(2)) as events:
            await events.get_final_message()
        async with client.messages.stream(**_args(3)) as events:
            streamed = await events.get_final_message()
    await otel_claude.wait_for_evaluations_async()
    assert created[1].model == SONNET and streamed.model == SONNET
    spans = telemetry.spans()
    assert len(by_role(spans, "shadow")) == 2 and len(verdicts(spans)) == 2
    callers = {s.context.span_id: s for s in by_role(spans, None)}
    for verdict in verdicts(spans):
        assert verdict.attributes["gen_ai.response.id"] == callers[verdict.parent.span_id].attributes[
            "gen_ai.response.id"]
    assert {callers[v.parent.span_id].attributes["gen_ai.request.stream"] for v in verdicts(spans)} == {False, True}


def test_raw_response_paths(sim, telemetry, instrument) -> None:
    instrument(evaluate_policy(share=1 / 2))
    client = anthropic.Anthropic(base_url=sim.base_url, api_key="sk-test", max_retries=0, timeout=120)
    with otel_claude.task("classify"):
        for case in range(2):
            raw = client.messages.with_raw_response.create(**_args(case))
            assert raw.parse().model == SONNET
        for case in range(2, 4):
            with client.messages.with_streaming_response.create(**_args(case)) as response:
                assert response.parse().model == SONNET
        # A body the caller reads as bytes and never parses is not read by the instrumentor: no pair.
        for case in range(4, 6):
            with client.messages.with_streaming_response.create(**_args(case)) as response:
                assert json.loads(response.read())["model"] == SONNET
            del response
    assert otel_claude.wait_for_evaluations(timeout=120)
    spans = telemetry.spans()
    assert len(by_role(spans, "shadow")) == 2
    assert len(verdicts(spans)) == 2
    assert metric_total(telemetry, "otel_claude.evaluation.skipped", **{
        "otel_claude.evaluation.skip_reason": "incumbent_failed"}) == 1
    assert all(r["headers"].get("x-stainless-raw-response") is None
               for r in sim.received if r["json"]["model"] == HAIKU)


def test_budget_bounds_evaluation_spend(sim, telemetry, instrument) -> None:
    instrument(evaluate_policy(share=0.5, budget=0.02))
    _run_sync(sim, 40)
    spans = telemetry.spans()
    app_cost = sum(s.attributes["otel_claude.cost_usd"] for s in by_role(spans, None))
    shadows = by_role(spans, "shadow")
    shadow_cost = sum(s.attributes["otel_claude.cost_usd"] for s in shadows)
    # Calls run one at a time: a pair is admitted only while spend so far fits, so at most one pair overshoots.
    largest = max(s.attributes["otel_claude.cost_usd"] for s in shadows)
    assert 0 < len(shadows) < 20
    assert shadow_cost <= 0.02 * app_cost + largest
    assert metric_total(telemetry, "otel_claude.evaluation.skipped", **{
        "otel_claude.evaluation.skip_reason": "budget"}) == 20 - len(shadows)


@pytest.mark.parametrize("pair_cost", [None, 0.002], ids=["input-price prior", "tuner's pair_cost"])
async def test_a_process_that_has_just_started_waits_until_the_budget_holds_a_pair(
        sim, telemetry, instrument, pair_cost: float | None) -> None:
    """An async service's first burst: 20 calls start at once, half of them sampled, before any has finished or
    cost anything. No pair fits a budget of 5% of nothing; afterwards pairs come as the spend allows."""
    instrument(evaluate_policy(share=0.5, budget=0.05, **({"pair_cost": pair_cost} if pair_cost else {})))
    client = anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="sk-test", max_retries=0, timeout=120)
    with otel_claude.task("classify"):
        await asyncio.gather(*(client.messages.create(**_args(case)) for case in range(20)))
        await otel_claude.wait_for_evaluations_async()
        assert not by_role(telemetry.spans(), "shadow")
        assert metric_total(telemetry, "otel_claude.evaluation.skipped", **{
            "otel_claude.evaluation.skip_reason": "budget"}) == 10
        for case in range(20, 80):
            await client.messages.create(**_args(case))
    await otel_claude.wait_for_evaluations_async()
    spans = telemetry.spans()
    shadows = by_role(spans, "shadow")
    app_cost = sum(s.attributes["otel_claude.cost_usd"] for s in by_role(spans, None))
    assert shadows
    assert sum(s.attributes["otel_claude.cost_usd"] for s in shadows) <= 0.05 * app_cost + max(
        s.attributes["otel_claude.cost_usd"] for s in shadows)


def test_no_content_leaves_the_process_with_capture_off(sim, telemetry, instrument, caplog) -> None:
    instrument(evaluate_policy(share=1 / 2))
    replies = _run_sync(sim, 4)
    texts = [QUESTION, SYSTEM[:60], *(m.content[0].text[:40] for m in replies)]
    values = []
    for span in telemetry.spans():
        values += [str(v) for v in span.attributes.values()]
        for event in span.events:
            values += [str(v) for v in event.attributes.values()]
    assert verdicts(telemetry.spans())
    assert not [v for v in values for t in texts if t in v]
    assert not [t for t in texts if t in caplog.text]


def test_evaluation_switched_off_by_option_shadow_mode_and_exploration(sim, telemetry, instrument) -> None:
    instrument(evaluate_policy(share=0.5), evaluation_options={"enabled": False})
    _run_sync(sim, 4)
    assert not by_role(telemetry.spans(), "shadow")
    otel_claude.uninstrument()

    instrument({**evaluate_policy(share=0.5), "mode": "shadow"})
    _run_sync(sim, 4)
    assert not by_role(telemetry.spans(), "shadow")
    otel_claude.uninstrument()

    policy = evaluate_policy(share=0.5)
    policy["rules"][0]["explore"] = {"model": HAIKU, "share": 0.2}
    instrument(policy)
    _run_sync(sim, 10)
    spans = telemetry.spans()
    explored = {s.context.span_id for s in by_role(spans, None) if s.attributes.get("otel_claude.policy.exploration")}
    assert len(explored) == 2
    assert len(by_role(spans, "shadow")) == 4  # half of the 8 calls that were not exploring
    assert not {s.parent.span_id for s in by_role(spans, "shadow")} & explored


def test_feedback_is_a_child_of_its_call(sim, telemetry, instrument) -> None:
    instrument()
    [reply] = _run_sync(sim, 1)
    otel_claude.feedback(reply, 1.0)
    [call] = by_role(telemetry.spans(), None)
    [feedback] = [s for s in telemetry.spans() if s.name == "evaluation feedback"]
    assert feedback.parent.span_id == call.context.span_id
    assert feedback.context.trace_id == call.context.trace_id
    assert feedback.links[0].context.span_id == call.context.span_id
    assert feedback.attributes["gen_ai.response.id"] == reply.id


@pytest.mark.parametrize("nights", [False, True])
def test_budget_buys_runs_of_pairs_that_find_the_candidates_cache_warm(sim, telemetry, instrument,
                                                                      nights: bool) -> None:
    """Calls 20 scenario-minutes apart that cache a long system prompt for an hour, half of them sampled. A pair
    started right after another (40 minutes later) reads the candidate's cache for a tenth of the write; pairs
    admitted one by one as the budget refills would come hours apart and each pay the write. With `nights`, every
    27 calls a 12-hour pause lets every cache expire: the pair after it pays the write, and runs start again."""
    instrument(evaluate_policy(share=0.5, budget=0.5))
    client = anthropic.Anthropic(base_url=sim.base_url, api_key="sk-test", max_retries=0, timeout=120)
    system = [{"type": "text", "text": SYSTEM * 25, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    at = sim.clock() + 3600
    with otel_claude.task("classify"):
        for case in range(108 if nights else 80):
            at += 1200 + (12 * 3600 if nights and case % 27 == 26 else 0)
            client.messages.create(**{**_args(case), "system": system, "extra_headers": {
                **_args(case)["extra_headers"], "x-sim-time": repr(at)}})
            assert otel_claude.wait_for_evaluations(timeout=120)  # each pair done before the next call
    spans = telemetry.spans()
    app_cost = sum(s.attributes["otel_claude.cost_usd"] for s in by_role(spans, None))
    shadows = sorted(by_role(spans, "shadow"), key=lambda s: s.start_time)
    costs = [s.attributes["otel_claude.cost_usd"] for s in shadows]
    reads = [s.attributes.get("gen_ai.usage.cache_read.input_tokens", 0) > 0 for s in shadows]
    cold = max(costs)
    assert sum(costs) <= 0.5 * app_cost + cold
    # Most pairs continue a run, and the budget buys several times what it would if every pair wrote the cache.
    assert sum(reads) >= 0.6 * len(shadows)
    assert len(shadows) >= 2 * (0.5 * app_cost / cold)
