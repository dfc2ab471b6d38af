"""A policy's max_tokens cap on every call path, and the limits a policy must never push a request past.

Non-streamed paths (create, raw responses, beta, sync and async) that a policy cap truncates are re-sent as the
caller asked; streams and raw responses whose body the caller reads later cannot be re-sent, and are marked
(`otel_claude.policy.truncated`, `otel_claude.policy.truncations`) so the truncation is visible and the next tune
raises the cap. A routed model's output limit, the SDK's long-request bound for non-streamed calls and thinking
budgets are never overstepped: the simulator answers 400 past a model's output limit, as the API does.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import pytest

import otel_claude
from claude_sim import SimServer

SONNET, HAIKU_3_5, OPUS_4_1 = "claude-sonnet-4-6", "claude-3-5-haiku", "claude-opus-4-1"
MESSAGES = [{"role": "user", "content": "where is my order?"}]


def policy(rule: dict[str, Any]) -> dict[str, Any]:
    return {"schema_version": 1, "version": "paths-1", "rules": [{"task": "classify", **rule}]}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(seed=2) as server:
        yield server


@pytest.fixture
def enforce(sim: SimServer, telemetry):  # type: ignore[no-untyped-def]
    """enforce(policy, call) -> (bodies the simulator received, call spans, what the call returned)."""
    def go(pol: dict[str, Any], call: Callable[[str], Any]) -> tuple[list[dict[str, Any]], list[Any], Any]:
        sim.clear_received()
        otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                               policy=pol)
        try:
            with otel_claude.task("classify"):
                result = call(sim.base_url)
        finally:
            otel_claude.uninstrument()
        return [r["json"] for r in sim.received], telemetry.call_spans(), result

    return go


def sync_client(base_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key="sk-test", max_retries=0, timeout=120.0)


def async_run(make: Callable[[anthropic.AsyncAnthropic], Any]) -> Callable[[str], Any]:
    async def main(base_url: str) -> Any:
        async with anthropic.AsyncAnthropic(base_url=base_url, api_key="sk-test", max_retries=0,
                                            timeout=120.0) as client:
            return await make(client)

    return lambda base_url: asyncio.run(main(base_url))


async def _async_raw(client: anthropic.AsyncAnthropic) -> Any:
    raw = await client.messages.with_raw_response.create(model=SONNET, max_tokens=1000, messages=MESSAGES)
    parsed = raw.parse()  # a coroutine from the 1.x+ response class, a message from 0.x's legacy one
    return await parsed if inspect.isawaitable(parsed) else parsed


NON_STREAMED: dict[str, Callable[[str], Any]] = {
    "create": lambda url: sync_client(url).messages.create(model=SONNET, max_tokens=1000, messages=MESSAGES),
    "with_raw_response": lambda url: sync_client(url).messages.with_raw_response.create(
        model=SONNET, max_tokens=1000, messages=MESSAGES),
    "beta create": lambda url: sync_client(url).beta.messages.create(model=SONNET, max_tokens=1000,
                                                                     messages=MESSAGES),
    "async create": async_run(lambda c: c.messages.create(model=SONNET, max_tokens=1000, messages=MESSAGES)),
    "async with_raw_response": async_run(_async_raw),
}


def stop_reason(result: Any) -> str:
    message = result.parse() if hasattr(result, "parse") else result
    return message.stop_reason


@pytest.mark.parametrize("path", list(NON_STREAMED))
def test_policy_truncated_non_streamed_call_is_resent_on_every_path(enforce, path: str) -> None:  # type: ignore[no-untyped-def]
    bodies, spans, result = enforce(policy({"max_tokens": 1}), NON_STREAMED[path])
    assert [b["max_tokens"] for b in bodies] == [1, 1000]
    first, retry = spans
    assert first.attributes["gen_ai.response.finish_reasons"] == ("max_tokens",)
    assert first.attributes["otel_claude.policy.truncated"] is True
    assert retry.attributes["otel_claude.policy.safety_retry"] is True
    assert "otel_claude.policy.truncated" not in retry.attributes
    assert stop_reason(result) != "max_tokens"  # the caller got the answer their own max_tokens allows


def _stream_create(url: str) -> str:
    events = list(sync_client(url).messages.create(model=SONNET, max_tokens=1000, messages=MESSAGES, stream=True))
    return next(e.delta.stop_reason for e in events if e.type == "message_delta")


def _stream_helper(url: str) -> str:
    with sync_client(url).messages.stream(model=SONNET, max_tokens=1000, messages=MESSAGES) as stream:
        return stream.get_final_message().stop_reason


async def _async_stream_helper(client: anthropic.AsyncAnthropic) -> str:
    async with client.messages.stream(model=SONNET, max_tokens=1000, messages=MESSAGES) as stream:
        return (await stream.get_final_message()).stop_reason


def _streaming_response(url: str) -> str:
    with sync_client(url).messages.with_streaming_response.create(model=SONNET, max_tokens=1000,
                                                                  messages=MESSAGES) as response:
        return response.parse().stop_reason


NOT_RESENT: dict[str, Callable[[str], Any]] = {
    "stream=True": _stream_create,
    "messages.stream()": _stream_helper,
    "async messages.stream()": async_run(_async_stream_helper),
    "with_streaming_response": _streaming_response,
}


@pytest.mark.parametrize("path", list(NOT_RESENT))
def test_policy_truncated_stream_is_marked_and_counted(enforce, telemetry, path: str) -> None:  # type: ignore[no-untyped-def]
    bodies, spans, stop = enforce(policy({"max_tokens": 1}), NOT_RESENT[path])
    assert [b["max_tokens"] for b in bodies] == [1]  # already read by the caller, or handed over unread: not re-sent
    assert stop == "max_tokens"
    (span,) = spans
    assert span.attributes["otel_claude.policy.truncated"] is True
    points = telemetry.metric_points("otel_claude.policy.truncations")
    assert [(p.value, p.attributes["otel_claude.policy.version"], p.attributes["otel_claude.task"])
            for p in points] == [(1, "paths-1", "classify")]


def test_the_callers_own_max_tokens_stop_is_not_the_policys(enforce, telemetry) -> None:  # type: ignore[no-untyped-def]
    def call(url: str) -> Any:
        return sync_client(url).messages.create(model=SONNET, max_tokens=1, messages=MESSAGES)

    bodies, spans, result = enforce(policy({"max_tokens": 500}), call)
    assert [b["max_tokens"] for b in bodies] == [1] and result.stop_reason == "max_tokens"
    assert "otel_claude.policy.truncated" not in spans[0].attributes
    assert telemetry.metric_points("otel_claude.policy.truncations") == []


def create(model: str, max_tokens: int, *, stream: bool = False, **extra: Any) -> Callable[[str], Any]:
    def call(url: str) -> Any:
        client = sync_client(url)
        if stream:
            with client.messages.stream(model=model, max_tokens=max_tokens, messages=MESSAGES, **extra) as s:
                return s.get_final_message()
        return client.messages.create(model=model, max_tokens=max_tokens, messages=MESSAGES, **extra)

    return call


def test_routing_never_exceeds_the_routed_models_output_limit(enforce) -> None:  # type: ignore[no-untyped-def]
    # 20,000 is valid for Sonnet 4.6 (and under the SDK's non-streaming bound); Haiku 3.5 answers at most 8,192.
    bodies, spans, result = enforce(policy({"model": HAIKU_3_5}), create(SONNET, 20_000))
    assert [(b["model"], b["max_tokens"]) for b in bodies] == [(HAIKU_3_5, 8192)]
    assert result.model.startswith(HAIKU_3_5)
    assert spans[0].attributes["otel_claude.policy.requested_max_tokens"] == 20_000
    assert spans[0].attributes["otel_claude.policy.applied_max_tokens"] == 8192


def test_routed_call_truncated_by_the_routed_models_limit_is_resent_as_asked(enforce) -> None:  # type: ignore[no-untyped-def]
    bodies, spans, _ = enforce(policy({"model": HAIKU_3_5, "max_tokens": 1}), create(SONNET, 20_000))
    # The caller's 20,000 does not fit Haiku 3.5: the safety net re-sends the caller's own request, model and all.
    assert [(b["model"], b["max_tokens"]) for b in bodies] == [(HAIKU_3_5, 1), (SONNET, 20_000)]
    assert spans[1].attributes["otel_claude.policy.safety_retry"] is True
    assert spans[1].attributes["gen_ai.request.model"] == SONNET


@pytest.mark.parametrize(("stream", "sent"), [(False, 21_333), (True, 30_000)])
def test_a_raised_max_tokens_stays_within_what_the_sdk_sends_without_streaming(enforce, stream: bool,  # type: ignore[no-untyped-def]
                                                                                sent: int) -> None:
    # The SDK refuses a non-streamed max_tokens above 21,333 before sending ("Streaming is required"); the policy
    # hook runs after that check, so a policy that raised it would send what the SDK itself would not.
    rule = {"max_tokens": 30_000, "max_tokens_mode": "set"}
    bodies, _, _ = enforce(policy(rule), create(SONNET, 1000, stream=stream))
    assert [b["max_tokens"] for b in bodies] == [sent]


def test_routing_to_a_model_with_a_lower_non_streaming_bound(enforce) -> None:  # type: ignore[no-untyped-def]
    # Opus 4.1 takes 32,000 output tokens, but the SDK sends at most 8,192 to it without streaming.
    bodies, _, _ = enforce(policy({"model": OPUS_4_1}), create(SONNET, 12_000))
    assert [(b["model"], b["max_tokens"]) for b in bodies] == [(OPUS_4_1, 8192)]


def test_no_route_where_the_limit_leaves_no_room_for_the_thinking_budget(enforce) -> None:  # type: ignore[no-untyped-def]
    thinking = {"type": "enabled", "budget_tokens": 10_000}
    bodies, spans, _ = enforce(policy({"model": HAIKU_3_5}), create(SONNET, 16_000, thinking=thinking))
    assert [(b["model"], b["max_tokens"]) for b in bodies] == [(SONNET, 16_000)]
    assert "otel_claude.policy.applied_model" not in spans[0].attributes
