"""Property: whatever bytes the API sends, the instrumented SDK hands the caller exactly what the bare SDK does.

Hypothesis generates responses (well-formed streams perturbed, arbitrary event sequences, unknown event, block and
delta types, missing and extra fields, wrong types, huge numbers, odd headers, truncation mid-event, dropped
connections) and ways to consume them (read all, break early, the `.stream()` helper, abandon, async). Each is
served over loopback to the real SDK twice, bare and instrumented, and must give the same events and the same
exception; the instrumented run must start one span, end it exactly once, swallow no internal failure, and produce
a span that the OTLP protobuf encoder and the JSON file exporter can both encode.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import pytest
from events import MODEL, message, stream_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from reliability_support import EndCounter, LogCatcher
from scripted_server import Received, Reply, ScriptedServer

import otel_claude
from otel_claude.otlp_file import encode_request

ARGS = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# -- what the server sends ------------------------------------------------------------------------------------------

huge = st.integers(min_value=-(2**70), max_value=2**70)
odd_scalar = st.one_of(st.none(), st.booleans(), huge, st.floats(allow_nan=False), st.text(max_size=8))
scalar = st.one_of(st.integers(min_value=0, max_value=10**6), odd_scalar)
extra = st.dictionaries(st.sampled_from(["zz_new_field", "data", "usage", "type"]), odd_scalar, max_size=2)


def with_extra(base: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda body, more: {**more, **body}, base, extra)


usage = st.dictionaries(
    st.sampled_from(["input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                     "service_tier", "speed", "cache_creation", "output_tokens_details"]),
    st.one_of(scalar, st.fixed_dictionaries({}, optional={"ephemeral_5m_input_tokens": scalar,
                                                          "ephemeral_1h_input_tokens": scalar,
                                                          "thinking_tokens": scalar})),
    max_size=6,
)
message_body = st.fixed_dictionaries(
    {"type": st.just("message")},
    optional={"id": scalar, "model": st.one_of(st.just(MODEL), scalar), "role": st.just("assistant"),
              "content": st.just([]), "stop_reason": scalar, "usage": st.one_of(usage, odd_scalar)},
)
block_type = st.sampled_from(["text", "tool_use", "thinking", "redacted_thinking", "server_tool_use", "brand_new"])
delta_type = st.sampled_from(["text_delta", "input_json_delta", "thinking_delta", "signature_delta",
                              "citations_delta", "brand_new_delta"])
index = st.one_of(st.just(0), st.integers(min_value=-1, max_value=3), odd_scalar)

event = st.one_of(
    st.tuples(st.just("message_start"), with_extra(st.fixed_dictionaries(
        {"type": st.just("message_start")}, optional={"message": st.one_of(message_body, odd_scalar)}))),
    st.tuples(st.just("content_block_start"), with_extra(st.fixed_dictionaries(
        {"type": st.just("content_block_start"), "index": index,
         "content_block": st.fixed_dictionaries({"type": block_type}, optional={"text": st.text(max_size=5)})}))),
    st.tuples(st.just("content_block_delta"), with_extra(st.fixed_dictionaries(
        {"type": st.just("content_block_delta"), "index": index},
        optional={"delta": st.fixed_dictionaries({"type": delta_type}, optional={
            "text": st.one_of(st.text(max_size=20), odd_scalar), "partial_json": st.text(max_size=10)})}))),
    st.tuples(st.just("content_block_stop"), st.fixed_dictionaries({"type": st.just("content_block_stop"),
                                                                    "index": index})),
    st.tuples(st.just("message_delta"), with_extra(st.fixed_dictionaries(
        {"type": st.just("message_delta")},
        optional={"delta": st.fixed_dictionaries({}, optional={"stop_reason": st.one_of(
            st.sampled_from(["end_turn", "max_tokens", "tool_use", "refusal", "brand_new_reason"]), odd_scalar)}),
            "usage": st.one_of(usage, odd_scalar)}))),
    st.tuples(st.just("message_stop"), st.just({"type": "message_stop"})),
    st.tuples(st.just("ping"), st.just({"type": "ping"})),
    st.tuples(st.just("error"), st.fixed_dictionaries({"type": st.just("error")}, optional={
        "error": st.fixed_dictionaries({"type": st.sampled_from(["overloaded_error", "api_error"]),
                                        "message": st.text(max_size=10)})})),
    st.tuples(st.sampled_from(["brand_new_event", "completion"]), st.dictionaries(st.text(max_size=4), odd_scalar,
                                                                                  max_size=2)),
)


@st.composite
def perturbed_stream(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """A well-formed stream with events removed, duplicated or inserted: the realistic failure shapes."""
    events = stream_events(draw(st.lists(st.text(max_size=6), max_size=5)),
                           output_tokens=draw(st.one_of(st.none(), st.integers(0, 10**6), huge)))
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(events)))
        action = draw(st.sampled_from(["drop", "insert", "duplicate"]))
        if action == "insert" or not events:
            events.insert(position, draw(event))
        elif action == "drop":
            events.pop(min(position, len(events) - 1))
        else:
            events.insert(position, events[min(position, len(events) - 1)])
    return events


header_text = st.text(alphabet="0123456789²٣ -x", max_size=25)
headers = st.dictionaries(
    st.sampled_from(["request-id", "anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-tokens-remaining",
                     "anthropic-ratelimit-input-tokens-remaining", "x-should-retry"]),
    header_text, max_size=3,
)


@st.composite
def stream_reply(draw: st.DrawFn) -> Reply:
    events = draw(st.one_of(perturbed_stream(), st.lists(event, max_size=8)))
    body = b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)
    cut = draw(st.one_of(st.none(), st.integers(0, max(len(body) - 1, 0))))
    reply = Reply.raw_sse(body if cut is None else body[:cut])
    reply.headers.update(draw(headers))
    if draw(st.booleans()) and cut is None:
        # A broken connection instead of a clean EOF (the server promises more body than it sends).
        reply.chunks = [body[: len(body) // 2], body[len(body) // 2:]]
        reply.drop_after = 1
    return reply


@st.composite
def json_reply(draw: st.DrawFn) -> Reply:
    body = draw(st.one_of(
        st.builds(lambda m, u, e: {**e, **m, "usage": u}, st.builds(lambda: message()), st.one_of(usage, odd_scalar),
                  extra),
        st.builds(lambda base, more: {**base, **more}, message_body, extra),
        odd_scalar,
    ))
    reply = Reply.json(body)
    reply.headers.update(draw(headers))
    return reply


# -- running it twice -----------------------------------------------------------------------------------------------


@dataclass
class Harness:
    server: ScriptedServer
    client: anthropic.Anthropic
    reply: Reply | None = None


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    holder: list[Harness] = []

    def serve(_request: Received) -> Reply:
        reply = holder[0].reply
        assert reply is not None
        return Reply(reply.status, reply.headers, list(reply.chunks), reply.drop_after)

    with ScriptedServer(serve) as server:
        holder.append(Harness(server,
                              anthropic.Anthropic(base_url=server.base_url, api_key="sk-test", max_retries=0)))
        yield holder[0]


def _dump(item: Any) -> Any:
    # The SDK builds events without validation, so odd fields are expected; pydantic's warnings about them are noise.
    return item.model_dump(warnings=False) if hasattr(item, "model_dump") else repr(item)


def _failure(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def consume(client: anthropic.Anthropic, mode: str, keep: int) -> tuple[list[Any], str | None]:
    """What the caller observes: the events (or message) it got and the exception it saw."""
    seen: list[Any] = []
    try:
        if mode == "json":
            seen.append(_dump(client.messages.create(**ARGS)))
        elif mode == "helper":
            with client.messages.stream(**ARGS) as helper:
                for item in helper:
                    seen.append(_dump(item))
                seen.append(_dump(helper.get_final_message()))
        else:
            stream = client.messages.create(**ARGS, stream=True)
            if mode == "abandon":
                del stream
                gc.collect()  # an abandoned stream's span ends when the stream is collected
                return seen, None
            for item in stream:
                seen.append(_dump(item))
                if mode == "break" and len(seen) >= keep:
                    break
            stream.close()
    except Exception as err:
        return seen, _failure(err)
    return seen, None


async def consume_async(base_url: str) -> tuple[list[Any], str | None]:
    seen: list[Any] = []
    # A client per event loop: an async client's connections belong to the loop that opened them.
    client = anthropic.AsyncAnthropic(base_url=base_url, api_key="sk-test", max_retries=0)
    try:
        stream = await client.messages.create(**ARGS, stream=True)
        async for item in stream:
            seen.append(_dump(item))
    except Exception as err:
        return seen, _failure(err)
    return seen, None


class Instrumented:
    """instrument() for one run with fresh recording, so each example is checked on its own."""

    def __init__(self) -> None:
        self.spans = EndCounter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(self.spans)
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def __enter__(self) -> EndCounter:
        self.spans.reset()
        otel_claude.instrument(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)
        return self.spans

    def __exit__(self, *exc: object) -> None:
        otel_claude.uninstrument()


@pytest.fixture(scope="module")
def instrumentation() -> Iterator[Instrumented]:
    inst = Instrumented()
    yield inst
    inst.tracer_provider.shutdown()
    inst.meter_provider.shutdown()


def check_span(spans: EndCounter, catcher: LogCatcher, inst: Instrumented) -> None:
    assert len(spans.started) == 1, "one span per call"
    assert spans.open_spans() == 0, "the span ended"
    assert all(count == 1 for count in spans.ended.values()), "the span ended exactly once"
    assert catcher.problems() == []
    encode_spans(spans.finished).SerializeToString()  # what the OTLP exporters send must encode
    json.dumps(encode_request(spans.finished))  # and so must the Collector-style JSON line
    inst.reader.get_metrics_data()  # metric recording of odd values must not have broken collection


def run_both(harness: Harness, inst: Instrumented, catcher: LogCatcher, reply: Reply, mode: str, keep: int) -> None:
    harness.reply = reply
    bare = consume(harness.client, mode, keep)
    catcher.records.clear()
    with inst as spans:
        observed = consume(harness.client, mode, keep)
    assert observed == bare
    check_span(spans, catcher, inst)


@SETTINGS
@given(reply=stream_reply(), mode=st.sampled_from(["all", "break", "helper", "abandon"]), keep=st.integers(1, 4))
def test_streams_are_transparent_and_end_once(harness: Harness, instrumentation: Instrumented,
                                              log_catcher: LogCatcher, reply: Reply, mode: str, keep: int) -> None:
    run_both(harness, instrumentation, log_catcher, reply, mode, keep)


@settings(SETTINGS, max_examples=25)
@given(reply=json_reply())
def test_json_responses_are_transparent_and_end_once(harness: Harness, instrumentation: Instrumented,
                                                     log_catcher: LogCatcher, reply: Reply) -> None:
    run_both(harness, instrumentation, log_catcher, reply, "json", 0)


@settings(SETTINGS, max_examples=15)
@given(reply=stream_reply())
def test_async_streams_are_transparent_and_end_once(harness: Harness, instrumentation: Instrumented,
                                                    log_catcher: LogCatcher, reply: Reply) -> None:
    harness.reply = reply
    bare = asyncio.run(consume_async(harness.server.base_url))
    log_catcher.records.clear()
    with instrumentation as spans:
        observed = asyncio.run(consume_async(harness.server.base_url))
    assert observed == bare
    check_span(spans, log_catcher, instrumentation)


def test_odd_header_digits_and_huge_counts_keep_the_span_whole(harness: Harness,
                                                               instrumentation: Instrumented) -> None:
    """Found by the properties above: a '²' in a rate-limit header made int() raise while ending the span, which
    lost every end-of-call attribute; a count above int64 made the OTLP encoder reject the span's whole batch."""
    events = stream_events(["a", "b"], output_tokens=2**64)
    reply = Reply.sse(events)
    reply.headers.update({"anthropic-ratelimit-requests-remaining": "²",
                          "anthropic-ratelimit-tokens-remaining": str(2**64), "request-id": "req_odd"})
    harness.reply = reply
    with instrumentation as spans:
        seen, failure = consume(harness.client, "all", 0)
    assert failure is None
    assert [item["type"] for item in seen] == [name for name, _ in events if name != "ping"]
    (span,) = spans.finished
    attrs = span.attributes or {}
    assert attrs["anthropic.request.id"] == "req_odd"
    assert attrs["gen_ai.usage.input_tokens"] == 20
    assert attrs["otel_claude.stream.complete"] is True
    assert "anthropic.ratelimit.requests.remaining" not in attrs
    assert "anthropic.ratelimit.tokens.remaining" not in attrs
    assert "gen_ai.usage.output_tokens" not in attrs
    encode_spans(spans.finished).SerializeToString()
