"""Opt-in content capture clips while encoding: a 10 MB answer costs the service no more memory than the few kB
that are exported.

Peak memory (tracemalloc, deterministic for a given code path) of the same 10 MB answer read bare and read with
content capture on, non-streamed and streamed. The responses are built before measuring, so the server's own
allocations are not counted.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import pytest
from events import message, stream_events
from scripted_server import Reply, ScriptedServer

import otel_claude

ANSWER_CHARS = 10_000_000
LIMIT = 4096
ARGS: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 64_000,
                        "messages": [{"role": "user", "content": "write a lot"}]}


def replies(stream: bool) -> Iterator[Reply]:
    while True:
        if stream:
            yield Reply.sse(stream_events(["x" * 10_000] * (ANSWER_CHARS // 10_000)))
        else:
            yield Reply.json(message("x" * ANSWER_CHARS))


def read_create(api: anthropic.Anthropic) -> None:
    api.messages.create(**ARGS)


def read_stream(api: anthropic.Anthropic) -> None:
    for _ in api.messages.create(**ARGS, stream=True):
        pass


def peak_mb(action: Callable[[], None]) -> float:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("read", [read_create, read_stream], ids=["create", "stream"])
def test_capture_of_a_10_mb_answer_adds_no_10_mb(read: Callable[[anthropic.Anthropic], None], telemetry) -> None:  # type: ignore[no-untyped-def]
    stream = read is read_stream
    made = replies(stream)
    script = [next(made) for _ in range(4)]  # warm-up and measured call, bare then instrumented
    with ScriptedServer(script) as server:
        api = anthropic.Anthropic(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=120.0)
        read(api)
        bare = peak_mb(lambda: read(api))
        otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                               capture_content=True, max_content_chars=LIMIT)
        try:
            read(api)
            captured = peak_mb(lambda: read(api))
        finally:
            otel_claude.uninstrument()
    spans = telemetry.call_spans()
    assert len(spans) == 2
    output = spans[-1].attributes["gen_ai.output.messages"]
    assert output.startswith('[{"role": "assistant", "content": ') and output.endswith("...[truncated]")
    assert len(output) == LIMIT + len("...[truncated]")
    # Encoding the whole answer to clip it costs at least its size again (10 MB); clipping while encoding, ~LIMIT.
    assert captured - bare < 2.0, f"bare {bare:.1f} MB, with capture {captured:.1f} MB"
