"""The LLM judge through the real SDK against a scripted server: both orders asked, wins only when they agree,
position bias ends in a tie, unreadable replies leave the pair unsettled; judge calls are traced and costed."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import anthropic
import pytest
from evaluation_support import HAIKU, SONNET, by_role, evaluate_policy, metric_total, verdicts
from scripted_server import Received, Reply, ScriptedServer

import otel_claude

JUDGE = "claude-opus-4-6"
INCUMBENT_TEXT = "The capital of Australia is Canberra."
CANDIDATE_TEXT = "Sydney is the capital of Australia."
_ids = itertools.count()


def _message(model: str, text: str, input_tokens: int = 30) -> Reply:
    return Reply.json({"id": f"msg_{next(_ids):06d}", "type": "message", "role": "assistant", "model": model,
                       "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                       "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": 12}})


def _server(judge_says: Callable[[str, str], str]) -> ScriptedServer:
    """Answers the caller (Sonnet), the candidate (Haiku), and the judge with `judge_says(answer_a, answer_b)`.
    The caller's calls report 1,000 input tokens: a task whose spend can pay for a judge (two Opus calls, priced
    before the first one as the shadow call's cost at Opus rates, about ten times what the 30-token shadow cost)."""

    def reply(request: Received) -> Reply:
        body = request.body
        if body["model"] == JUDGE:
            prompt = body["messages"][0]["content"]
            a = prompt.split("<answer_a>")[1].split("</answer_a>")[0].strip()
            b = prompt.split("<answer_b>")[1].split("</answer_b>")[0].strip()
            return _message(JUDGE, judge_says(a, b))
        if body["model"] == SONNET:
            return _message(SONNET, INCUMBENT_TEXT, input_tokens=1_000)
        return _message(body["model"], CANDIDATE_TEXT)

    return ScriptedServer(reply)


def _run(telemetry: Any, server: ScriptedServer, calls: int = 2, judge_in_rule: bool = True,
         **options: Any) -> list[Any]:
    policy = evaluate_policy(share=0.5, **({"judge": {"model": JUDGE}} if judge_in_rule else {}))
    otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                           policy=policy, policy_options={"reload_interval": 0}, **options)
    try:
        client = anthropic.Anthropic(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=120)
        with otel_claude.task("classify"):
            replies = [client.messages.create(model=SONNET, max_tokens=100, extra_headers={"x-sim-case": str(i)},
                                              messages=[{"role": "user", "content": "capital of Australia?"}])
                       for i in range(calls)]
        assert otel_claude.wait_for_evaluations(timeout=120)
    finally:
        otel_claude.uninstrument()
    return replies


def _judge_requests(server: ScriptedServer) -> list[Received]:
    return [r for r in server.received if r.body["model"] == JUDGE]


def test_consistent_judge_settles_the_pair(telemetry) -> None:  # type: ignore[no-untyped-def]
    def prefers_canberra(a: str, b: str) -> str:
        return "VERDICT: A\nIt names the right city." if "Canberra" in a else "VERDICT: B\nB is right."

    with _server(prefers_canberra) as server:
        replies = _run(telemetry, server)
        judged = _judge_requests(server)
    assert [r.content[0].text for r in replies] == [INCUMBENT_TEXT] * 2  # the caller's answers, untouched
    [verdict] = verdicts(telemetry.spans())
    attrs = verdict.attributes
    assert (attrs["gen_ai.evaluation.name"], attrs["gen_ai.evaluation.score.label"],
            attrs["gen_ai.evaluation.score.value"]) == ("judge", "candidate_worse", -1.0)
    # Asked twice, the answers swapped, with the caller's headers (the simulator finds the case by them).
    assert len(judged) == 2
    first, second = (r.body["messages"][0]["content"] for r in judged)
    assert first.index(INCUMBENT_TEXT) < first.index(CANDIDATE_TEXT)
    assert second.index(CANDIDATE_TEXT) < second.index(INCUMBENT_TEXT)
    assert "capital of Australia?" in first
    assert all(r.headers["x-sim-case"] == "1" for r in judged)
    spans = telemetry.spans()
    judges = by_role(spans, "judge")
    assert len(judges) == 2
    assert {j.parent.span_id for j in judges} == {verdict.parent.span_id}  # children of the caller's call
    assert metric_total(telemetry, "otel_claude.evaluation.cost", **{"otel_claude.evaluation.role": "judge"}) == \
        pytest.approx(sum(j.attributes["otel_claude.cost_usd"] for j in judges))


def test_candidate_better_when_both_orders_agree(telemetry) -> None:  # type: ignore[no-untyped-def]
    def prefers_sydney(a: str, b: str) -> str:
        return "VERDICT: A" if "Sydney" in a else "**VERDICT: B**"

    with _server(prefers_sydney) as server:
        _run(telemetry, server)
    [verdict] = verdicts(telemetry.spans())
    assert verdict.attributes["gen_ai.evaluation.score.label"] == "candidate_better"
    assert verdict.attributes["gen_ai.evaluation.score.value"] == 1.0


@pytest.mark.parametrize(("says", "asks"), [("VERDICT: A", 2), ("verdict: tie", 1)])
def test_position_bias_and_ties_are_ties(telemetry, says: str, asks: int) -> None:  # type: ignore[no-untyped-def]
    with _server(lambda a, b: says) as server:
        _run(telemetry, server)
        # A first-order tie is a tie whatever the second order would say: the second is not asked (it costs).
        assert len(_judge_requests(server)) == asks
    [verdict] = verdicts(telemetry.spans())
    assert verdict.attributes["gen_ai.evaluation.score.label"] == "tie"
    assert verdict.attributes["gen_ai.evaluation.score.value"] == 0.0


def test_unreadable_judge_leaves_the_pair_unsettled(telemetry) -> None:  # type: ignore[no-untyped-def]
    with _server(lambda a, b: "I think A is better.\nVERDICT: A") as server:
        _run(telemetry, server)
        assert len(_judge_requests(server)) == 1  # no second order once the first is unreadable
    [verdict] = verdicts(telemetry.spans())
    assert (verdict.attributes["gen_ai.evaluation.name"], verdict.attributes["gen_ai.evaluation.score.label"]) == \
        ("judge", "unsettled")


def test_default_judge_from_options(telemetry) -> None:  # type: ignore[no-untyped-def]
    with _server(lambda a, b: "VERDICT: TIE") as server:
        _run(telemetry, server, judge_in_rule=False, evaluation_options={"judge": {"model": JUDGE, "rubric": "R!"}})
        [judged] = _judge_requests(server)
    assert judged.body["messages"][0]["content"].startswith("R!")


def test_no_judge_configured_leaves_differences_unsettled(telemetry) -> None:  # type: ignore[no-untyped-def]
    with _server(lambda a, b: "VERDICT: TIE") as server:
        _run(telemetry, server, judge_in_rule=False)
        assert not _judge_requests(server)
    [verdict] = verdicts(telemetry.spans())
    assert (verdict.attributes["gen_ai.evaluation.name"], verdict.attributes["gen_ai.evaluation.score.label"]) == \
        ("exact", "unsettled")


def test_failed_shadow_call_is_counted_not_raised(telemetry) -> None:  # type: ignore[no-untyped-def]
    def reply(request: Received) -> Reply:
        if request.body["model"] == HAIKU:
            return Reply.json({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, 529)
        return _message(SONNET, INCUMBENT_TEXT)

    with ScriptedServer(reply) as server:
        replies = _run(telemetry, server)
        assert len([r for r in server.received if r.body["model"] == HAIKU]) == 1  # not retried
    assert replies[1].content[0].text == INCUMBENT_TEXT
    spans = telemetry.spans()
    assert not verdicts(spans)
    [shadow] = by_role(spans, "shadow")
    assert shadow.attributes["error.type"] == "overloaded_error"
    assert metric_total(telemetry, "otel_claude.evaluation.skipped", **{
        "otel_claude.evaluation.skip_reason": "shadow_failed"}) == 1


def test_judge_is_not_asked_past_the_budget(telemetry) -> None:  # type: ignore[no-untyped-def]
    with _server(lambda a, b: "VERDICT: TIE") as server:
        policy = evaluate_policy(share=0.5, budget=0.05, judge={"model": JUDGE})
        otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                               policy=policy, policy_options={"reload_interval": 0})
        try:
            client = anthropic.Anthropic(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=120)
            with otel_claude.task("classify"):
                for _ in range(2):
                    client.messages.create(model=SONNET, max_tokens=100,
                                           messages=[{"role": "user", "content": "capital of Australia?"}])
            assert otel_claude.wait_for_evaluations(timeout=120)
        finally:
            otel_claude.uninstrument()
        # 5% of the task's two calls (3.2e-4 USD) holds the shadow (9e-5) but not two judge calls priced at the
        # shadow's cost at Opus rates (4.5e-4 each): no judge.
        assert not _judge_requests(server)
    [verdict] = verdicts(telemetry.spans())
    assert verdict.attributes["gen_ai.evaluation.score.label"] == "unsettled"
