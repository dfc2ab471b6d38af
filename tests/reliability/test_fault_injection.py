"""Faults from the simulator and from the telemetry path never change what the caller sees.

Each storm runs the same deterministic call sequence twice against simulators with the same seed and faults,
bare and instrumented: outcomes must be identical, every call must have exactly one ended span whose error and
retry count agree with what happened on the wire.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import pytest
from events import message, stream_events
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from reliability_support import EndCounter, LogCatcher
from scripted_server import Reply, ScriptedServer

import otel_claude
from claude_sim import Fault, SimServer
from claude_sim.collector import CollectorStub

MODEL = "claude-haiku-4-5"
ARGS: dict[str, Any] = {"model": MODEL, "max_tokens": 40, "messages": [{"role": "user", "content": "Say hi."}]}
MODES = ("create", "stream", "helper", "async", "async_stream")


def outcome(client: anthropic.Anthropic, options: dict[str, Any], mode: str) -> tuple[Any, ...]:
    """What the caller observes for one call: the text or event types it got, and the exception it saw."""
    try:
        if mode == "create":
            return ("ok", client.messages.create(**ARGS).content[0].text)
        if mode == "stream":
            return ("ok", [event.type for event in client.messages.create(**ARGS, stream=True)])
        if mode == "helper":
            with client.messages.stream(**ARGS) as stream:
                return ("ok", "".join(stream.text_stream))
        if mode == "async":
            return ("ok", asyncio.run(_async_create(options)))
        return ("ok", asyncio.run(_async_stream(options)))
    except Exception as err:  # a broken stream surfaces as the HTTP library's error, not an APIError
        return ("error", type(err).__name__, getattr(err, "status_code", None))


# A client per asyncio.run: an async client's connections belong to the loop that opened them.
async def _async_create(options: dict[str, Any]) -> str:
    async with anthropic.AsyncAnthropic(**options) as aclient:
        return (await aclient.messages.create(**ARGS)).content[0].text


async def _async_stream(options: dict[str, Any]) -> list[str]:
    async with anthropic.AsyncAnthropic(**options) as aclient:
        return [event.type async for event in await aclient.messages.create(**ARGS, stream=True)]


def run_storm(faults: list[Fault], calls: int, *, retries: int, timeout: float = 10.0,
              spans: EndCounter | None = None) -> tuple[list[tuple[Any, ...]], int]:
    """(outcomes, requests the simulator received) for `calls` calls cycling through every mode."""
    with SimServer(seed=7, faults=faults) as sim:
        options: dict[str, Any] = {"base_url": sim.base_url, "api_key": "sk-test", "max_retries": retries,
                                   "timeout": timeout}
        client = anthropic.Anthropic(**options)
        results = [outcome(client, options, MODES[number % len(MODES)]) for number in range(calls)]
        return results, len(sim.received)


@contextmanager
def recording() -> Iterator[EndCounter]:
    """Instrumented for the block, every span counted."""
    spans = EndCounter()
    provider = TracerProvider()
    provider.add_span_processor(spans)
    otel_claude.instrument(tracer_provider=provider, setup_providers=False)
    try:
        yield spans
    finally:
        otel_claude.uninstrument()
        provider.shutdown()


STORMS = {
    "429 storm": [Fault("rate_limit", count=None, probability=0.6, retry_after=0.001)],
    "529 storm": [Fault("overloaded", count=None, probability=0.6, retry_after=0.001)],
    "mixed 429/529/500": [Fault("rate_limit", count=None, probability=0.3, retry_after=0.001),
                          Fault("overloaded", count=None, probability=0.3, retry_after=0.001),
                          Fault("api_error", count=None, probability=0.2, retry_after=0.001)],
    "mid-stream errors": [Fault("stream_error", count=None, probability=0.5, after_events=2)],
    "streams cut mid-body": [Fault("drop", count=None, probability=0.5, after_events=3, stream=True)],
}


@pytest.mark.parametrize("name", list(STORMS))
def test_storm_outcomes_unchanged_and_one_span_per_call(name: str, log_catcher: LogCatcher) -> None:
    calls = 15
    bare, bare_requests = run_storm(STORMS[name], calls, retries=2)
    with recording() as spans:
        observed, requests = run_storm(STORMS[name], calls, retries=2)
    assert observed == bare
    assert requests == bare_requests
    assert any(result[0] == "error" for result in bare) or requests > calls, "the storm must actually hit"
    assert len(spans.started) == calls
    assert spans.open_spans() == 0
    assert set(spans.ended.values()) == {1}
    assert log_catcher.problems() == []
    failed = sum(result[0] == "error" for result in observed)
    assert sum("error.type" in (span.attributes or {}) for span in spans.finished) >= failed
    # Retries happen inside the SDK under one span: the recorded counts add up to the extra requests sent
    # (a stream that fails mid-body is not retried, so it adds none).
    retried = sum((span.attributes or {}).get("otel_claude.retries", 0) for span in spans.finished)
    assert retried == requests - calls


def test_connection_errors_after_retries_record_the_retries() -> None:
    with recording() as spans:
        observed, requests = run_storm([Fault("drop", count=None, stream=False)], 1, retries=1)
    assert observed == [("error", "APIConnectionError", None)]
    assert requests == 2
    (span,) = spans.finished
    assert span.attributes["error.type"] == "connection_error"
    assert span.attributes.get("otel_claude.retries") == 1


def stalled_create(reply: Reply, release: threading.Event) -> tuple[Any, ...]:
    try:
        with ScriptedServer([reply]) as server:
            client = anthropic.Anthropic(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=0.1)
            return outcome(client, {}, "create")
    finally:
        release.set()


def test_stall_before_headers_times_out_like_bare(log_catcher: LogCatcher) -> None:
    release = threading.Event()
    bare = stalled_create(Reply.json(message("hi"), hold_headers=release), release)
    assert bare == ("error", "APITimeoutError", None)
    release = threading.Event()
    with recording() as spans:
        observed = stalled_create(Reply.json(message("hi"), hold_headers=release), release)
    assert observed == bare
    (span,) = spans.finished
    assert span.attributes["error.type"] == "client_timeout_error"
    assert log_catcher.problems() == []


def test_stall_mid_stream_times_out_and_span_ends() -> None:
    release = threading.Event()
    stalled = Reply.sse(stream_events(["a"] * 10), wait=release, wait_after=3)
    try:
        with recording() as recorded, ScriptedServer([stalled]) as server:
            client = anthropic.Anthropic(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=0.1)
            seen = []
            # Past the headers the SDK does not wrap transport errors: the caller gets the HTTP library's timeout.
            with pytest.raises(Exception, match="timed out") as info:
                for event in client.messages.create(**ARGS, stream=True):
                    seen.append(event.type)
    finally:
        release.set()
    assert seen[0] == "message_start"
    (span,) = recorded.finished
    assert span.attributes["otel_claude.stream.complete"] is False
    assert "Timeout" in type(info.value).__name__
    assert span.attributes["error.type"] == "client_timeout_error"


# -- the telemetry endpoint is down or stuck ------------------------------------------------------------------------


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_exporter(endpoint: str, body: Callable[[anthropic.Anthropic], None]) -> BatchSpanProcessor:
    # A short export timeout bounds the exporter's retries, so shutting the processor down stays quick.
    processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=0.5), schedule_delay_millis=10,
                                   max_export_batch_size=4)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    otel_claude.instrument(tracer_provider=provider, setup_providers=False)
    try:
        with SimServer(seed=3) as sim:
            body(anthropic.Anthropic(base_url=sim.base_url, api_key="sk-test", max_retries=0))
    finally:
        otel_claude.uninstrument()
    return processor


def test_unreachable_collector_never_fails_a_call(log_catcher: LogCatcher) -> None:
    texts: list[str] = []

    def calls(client: anthropic.Anthropic) -> None:
        for _ in range(20):
            texts.append(client.messages.create(**ARGS).content[0].text)
        texts.append("".join(e.delta.text for e in client.messages.create(**ARGS, stream=True)
                             if e.type == "content_block_delta"))

    processor = with_exporter(f"http://127.0.0.1:{closed_port()}/v1/traces", calls)
    processor.shutdown()
    assert len(texts) == 21 and all(texts)
    assert any("Failed to export" in message for message in log_catcher.messages()), "the collector was tried"


def test_stuck_collector_does_not_hold_calls() -> None:
    """The export request is provably in flight and held by the collector while calls keep completing."""
    with CollectorStub(delay=None) as collector:
        done: list[int] = []

        def calls(client: anthropic.Anthropic) -> None:
            client.messages.create(**ARGS)
            assert collector.wait_for(lambda c: c.requests > 0, timeout=300), "the exporter never reached the collector"
            for _ in range(30):
                client.messages.create(**ARGS)
                done.append(1)
            assert collector.answered == 0, "the export must still be held while the calls completed"

        with_exporter(collector.traces_endpoint, calls)
        assert len(done) == 30
