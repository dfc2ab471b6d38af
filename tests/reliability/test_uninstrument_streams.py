"""A stream opened while instrumented and closed after `uninstrument()` ends its span on close, not when the stream
is garbage-collected; the SDK's classes are still restored exactly."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
from events import stream_events
from scripted_server import Reply, ScriptedServer

import otel_claude

ARGS: dict[str, Any] = {"model": "claude-sonnet-4-6", "max_tokens": 100,
                        "messages": [{"role": "user", "content": "hi"}]}
STREAMS = 13


def client(server: ScriptedServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=120.0)


def instrument(telemetry: Any) -> None:  # type: ignore[no-untyped-def]
    otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)


def test_streams_closed_after_uninstrument_end_their_spans(telemetry) -> None:  # type: ignore[no-untyped-def]
    import anthropic._streaming as streaming

    close_before = streaming.Stream.__dict__["close"]
    with ScriptedServer([Reply.sse(stream_events(["a"] * 5)) for _ in range(STREAMS + 2)]) as server:
        api = client(server)
        instrument(telemetry)
        streams = [api.messages.create(**ARGS, stream=True) for _ in range(STREAMS)]
        for stream in streams:
            next(iter(stream))
        manager = api.messages.stream(**ARGS)
        helper = manager.__enter__()
        next(iter(helper))
        otel_claude.uninstrument()
        assert streaming.Stream.__dict__["close"] is close_before  # the class is restored exactly
        assert telemetry.call_spans() == []  # all still open: the caller holds them
        for stream in streams:
            stream.close()
        manager.__exit__(None, None, None)
        spans = telemetry.call_spans()  # the streams are still referenced: only close() can have ended them
        assert len(spans) == STREAMS + 1
        assert all(span.attributes["otel_claude.stream.complete"] is False for span in spans)
        # After uninstrument, a stream opened then is not watched at all.
        list(api.messages.create(**ARGS, stream=True))
        assert len(telemetry.call_spans()) == STREAMS + 1
        del streams, helper


def test_async_stream_closed_after_uninstrument_ends_its_span(telemetry) -> None:  # type: ignore[no-untyped-def]
    async def main(base_url: str) -> int:
        async with anthropic.AsyncAnthropic(base_url=base_url, api_key="sk-test", max_retries=0,
                                            timeout=120.0) as api:
            instrument(telemetry)
            stream = await api.messages.create(**ARGS, stream=True)
            await stream.__aiter__().__anext__()
            manager = api.messages.stream(**ARGS)
            helper = await manager.__aenter__()
            await helper.__aiter__().__anext__()
            otel_claude.uninstrument()
            await stream.close()
            await manager.__aexit__(None, None, None)
            ended = len(telemetry.call_spans())
            del stream, helper
            return ended

    with ScriptedServer([Reply.sse(stream_events(["a"] * 5)) for _ in range(2)]) as server:
        assert asyncio.run(main(server.base_url)) == 2
