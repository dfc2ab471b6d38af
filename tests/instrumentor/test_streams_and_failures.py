"""Streams end their span exactly once however they end; failures reach the caller unchanged and are recorded."""

from __future__ import annotations

import asyncio
import gc
import threading

import anthropic
import pytest
from events import MODEL, error_body, message, stream_events
from scripted_server import Reply, ScriptedServer

import otel_claude

ARGS = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


# Generous timeouts (the SDK's connect timeout is 5 s): hundreds of connections opened at once on a loaded machine
# must not turn into timeouts the test is not about.
def client(server: ScriptedServer, retries: int = 0) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="sk-test", max_retries=retries, timeout=300.0)


def aclient(server: ScriptedServer, retries: int = 0) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=server.base_url, api_key="sk-test", max_retries=retries, timeout=300.0)


def one(instrumented):  # type: ignore[no-untyped-def]
    spans = instrumented.call_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def test_break_early_marks_incomplete_without_output_count(instrumented) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer([Reply.sse(stream_events(["a"] * 50))]) as server:
        stream = client(server).messages.create(**ARGS, stream=True)
        for event in stream:
            if event.type == "content_block_delta":
                break
        assert instrumented.call_spans() == []  # still open: the caller holds the stream
        stream.close()
        stream.close()
    span = one(instrumented)
    assert span.attributes["otel_claude.stream.complete"] is False
    assert "gen_ai.usage.output_tokens" not in span.attributes
    assert span.attributes["gen_ai.response.time_to_first_chunk"] > 0


def test_context_exit_of_stream_manager_ends_span(instrumented) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer([Reply.sse(stream_events(["a"] * 20))]) as server:
        with client(server).messages.stream(**ARGS) as stream:
            next(iter(stream))
    assert one(instrumented).attributes["otel_claude.stream.complete"] is False


def test_abandoned_stream_ends_on_garbage_collection(instrumented) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer([Reply.sse(stream_events(["a", "b"]))]) as server:
        stream = client(server).messages.create(**ARGS, stream=True)
        del stream
        gc.collect()
    span = one(instrumented)
    assert span.end_time is not None
    assert span.attributes["otel_claude.stream.complete"] is False


def test_stream_without_message_stop_is_incomplete(instrumented) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer([Reply.sse(stream_events(["a", "b"], with_stop=False))]) as server:
        events = list(client(server).messages.create(**ARGS, stream=True))
    assert events[-1].type == "message_delta"
    span = one(instrumented)
    assert span.attributes["otel_claude.stream.complete"] is False


def test_usage_merge_overwrites_cumulative_counts(instrumented) -> None:  # type: ignore[no-untyped-def]
    events = stream_events(["x"] * 3, output_tokens=194, start_usage={"output_tokens": 26, "input_tokens": 10,
                                                                       "cache_read_input_tokens": 0})
    events[-2][1]["usage"].update({"cache_read_input_tokens": 5000, "input_tokens": 10})  # cache only in delta
    with ScriptedServer([Reply.sse(events)]) as server:
        list(client(server).messages.create(**ARGS, stream=True))
    attrs = one(instrumented).attributes
    assert attrs["gen_ai.usage.output_tokens"] == 194  # not 26 + 194
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 5000
    assert attrs["gen_ai.usage.input_tokens"] == 5010


def test_cache_write_split_and_cost(instrumented) -> None:  # type: ignore[no-untyped-def]
    usage = {"input_tokens": 10, "output_tokens": 100, "cache_creation_input_tokens": 3000,
             "cache_read_input_tokens": 0,
             "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000}}
    with ScriptedServer([Reply.json(message(usage=usage))]) as server:
        client(server).messages.create(**ARGS)
    attrs = one(instrumented).attributes
    assert attrs["gen_ai.usage.input_tokens"] == 3010
    assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 3000
    assert attrs["gen_ai.usage.cache_write.input_tokens"] == 3000
    assert attrs["anthropic.usage.cache_creation.ephemeral_1h_input_tokens"] == 2000
    expected = (10 * 3 + 100 * 15 + 1000 * 3.75 + 2000 * 6) / 1e6
    assert attrs["otel_claude.cost_usd"] == pytest.approx(expected)


def test_mid_stream_error_event_reaches_caller(instrumented) -> None:  # type: ignore[no-untyped-def]
    events = [*stream_events(["a", "b"])[:4], ("error", error_body("overloaded_error"))]
    with ScriptedServer([Reply.sse(events)]) as server:
        with pytest.raises(anthropic.APIStatusError) as info:
            list(client(server).messages.create(**ARGS, stream=True))
    assert "overloaded_error" in str(info.value)
    span = one(instrumented)
    assert span.attributes["error.type"] == "overloaded_error"
    assert span.status.status_code.name == "ERROR"


def test_dropped_connection_mid_stream(instrumented) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer([Reply.sse(stream_events(["a"] * 10), drop_after=4)]) as server:
        stream = client(server).messages.create(**ARGS, stream=True)
        with pytest.raises(Exception) as info:
            list(stream)
    span = one(instrumented)
    # One name for a transport failure, whichever httpx the SDK is built on (httpx before 1.0, httpx2 after).
    assert type(info.value).__module__.split(".")[0] in ("httpx", "httpx2")
    assert span.attributes["error.type"] == "connection_error"
    assert span.attributes["otel_claude.stream.complete"] is False


def test_retries_counted_and_one_span(instrumented) -> None:  # type: ignore[no-untyped-def]
    busy = Reply.json(error_body("rate_limit_error"), 429, headers={"retry-after-ms": "5"})
    with ScriptedServer([busy, busy, Reply.json(message())]) as server:
        result = client(server, retries=2).messages.create(**ARGS)
        assert len(server.received) == 3
    assert result.id == "msg_01"
    span = one(instrumented)
    assert span.attributes["otel_claude.retries"] == 2
    assert "error.type" not in span.attributes


@pytest.mark.parametrize(
    ("status", "kind", "exc"),
    [(529, "overloaded_error", "OverloadedError"), (400, "invalid_request_error", "BadRequestError"),
     (500, "api_error", "InternalServerError")],
)
def test_api_errors_recorded_and_unchanged(instrumented, status: int, kind: str, exc: str) -> None:  # type: ignore[no-untyped-def]
    replies = [Reply.json(error_body(kind), status, headers={"retry-after-ms": "1"}) for _ in range(2)]
    with ScriptedServer(replies) as server:
        with pytest.raises(anthropic.APIStatusError) as info:
            client(server, retries=1).messages.create(**ARGS)
    expected_cls = getattr(anthropic, exc, anthropic.InternalServerError)
    assert isinstance(info.value, expected_cls)
    span = one(instrumented)
    assert span.attributes["error.type"] == kind
    assert span.status.status_code.name == "ERROR"
    assert span.attributes["otel_claude.retries"] == (0 if status == 400 else 1)


async def test_cancellation_ends_span(instrumented) -> None:  # type: ignore[no-untyped-def]
    release = threading.Event()
    with ScriptedServer([Reply.sse(stream_events(["a"]), wait=release)]) as server:
        started = asyncio.Event()

        async def consume() -> None:
            stream = await aclient(server).messages.create(**ARGS, stream=True)
            started.set()
            async for _ in stream:
                pass

        task = asyncio.create_task(consume())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
    span = one(instrumented)
    # The application stopped the call: not a failure (no error.type, status unset), marked as cancelled.
    assert "error.type" not in span.attributes
    assert span.status.status_code.name == "UNSET"
    assert span.attributes["otel_claude.cancelled"] is True
    assert span.attributes["otel_claude.stream.complete"] is False


def test_instrument_cycles_restore_sdk_exactly(telemetry) -> None:  # type: ignore[no-untyped-def]
    from anthropic import _base_client, _streaming

    before = (_base_client.SyncAPIClient.__dict__["request"], _base_client.AsyncAPIClient.__dict__["request"],
              _streaming.Stream.__dict__["close"], dict(_base_client.BaseClient.__dict__).get("_tracer"))
    for _ in range(3):
        otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
        patched = _base_client.SyncAPIClient.__dict__["request"]
        otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
        assert _base_client.SyncAPIClient.__dict__["request"] is patched  # second instrument() is a no-op
        assert patched is not before[0]
        otel_claude.uninstrument()
    after = (_base_client.SyncAPIClient.__dict__["request"], _base_client.AsyncAPIClient.__dict__["request"],
             _streaming.Stream.__dict__["close"], dict(_base_client.BaseClient.__dict__).get("_tracer"))
    assert after == before
    with ScriptedServer([Reply.json(message())]) as server:
        client(server).messages.create(**ARGS)
    assert telemetry.spans() == []  # uninstrumented: nothing recorded


def test_providers_are_not_kept_alive_after_uninstrument() -> None:
    """A process that builds providers as it goes (a test suite, a service per tenant) must get them back."""
    import gc
    import weakref

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    refs = []
    for _ in range(3):
        tracer_provider = TracerProvider()
        meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        otel_claude.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        with ScriptedServer([Reply.json(message())]) as server:
            client(server).messages.create(**ARGS)
        otel_claude.uninstrument()
        tracer_provider.shutdown()  # until then the SDK itself holds it (its atexit hook)
        meter_provider.shutdown()
        refs += [weakref.ref(tracer_provider), weakref.ref(meter_provider)]
        del tracer_provider, meter_provider
    gc.collect()
    assert [ref() for ref in refs] == [None] * 6


def test_reinstrumenting_the_same_providers_keeps_counter_totals(telemetry) -> None:  # type: ignore[no-untyped-def]
    for _ in range(2):
        otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
        with ScriptedServer([Reply.json(message())]) as server:
            client(server).messages.create(**ARGS)
        otel_claude.uninstrument()
    calls = telemetry.metric_points("otel_claude.calls")
    assert [point.value for point in calls] == [2]  # one counter, not two registrations of one call each


def test_existing_client_and_cached_raw_accessor_are_covered(telemetry) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer([Reply.json(message()), Reply.json(message())]) as server:
        existing = client(server)
        raw_create = existing.messages.with_raw_response.create  # cached before instrument()
        otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
        try:
            existing.messages.create(**ARGS)
            raw_create(**ARGS).parse()
        finally:
            otel_claude.uninstrument()
    assert len(telemetry.call_spans()) == 2


def echo_by_task(request) -> Reply:  # type: ignore[no-untyped-def]
    tag = request.headers["x-tag"]
    return Reply.json(message(msg_id=f"msg_{tag}"))


def test_fifty_threads_do_not_mix_spans(instrumented) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer(echo_by_task) as server:
        shared = client(server)

        def worker(n: int) -> None:
            with otel_claude.task(f"t{n}"):
                for _ in range(4):
                    shared.messages.create(**ARGS, extra_headers={"x-tag": f"t{n}"})

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    spans = instrumented.call_spans()
    assert len(spans) == 200
    for span in spans:
        assert span.attributes["gen_ai.response.id"] == "msg_" + span.attributes["otel_claude.task"]


async def test_five_hundred_tasks_do_not_mix_spans(instrumented) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer(echo_by_task) as server:
        shared = aclient(server)

        async def plain_call(n: int) -> None:
            with otel_claude.task(f"a{n}"):
                await shared.messages.create(**ARGS, extra_headers={"x-tag": f"a{n}"})

        await asyncio.gather(*(plain_call(n) for n in range(500)))
    spans = instrumented.call_spans()
    assert len(spans) == 500
    assert len({s.context.span_id for s in spans}) == 500
    for span in spans:
        assert span.attributes["gen_ai.response.id"] == "msg_" + span.attributes["otel_claude.task"]
