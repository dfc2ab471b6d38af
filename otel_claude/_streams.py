"""Watching SSE streams without changing them.

The SDK's `Stream`/`AsyncStream` object is returned to the caller unchanged (same type, same methods); only its
private event iterator is wrapped. Per event the wrapper does a string comparison and, for the first content
delta, reads the clock: no allocation, no metric record. The span ends exactly once, at the first of
`message_stop`, exhaustion, an error, `close()`, cancellation, or garbage collection of an abandoned stream.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ._call import Call
from ._response import UsageReading, field
from ._safety import report_failure

__all__ = ["WATCH_KEY", "StreamWatch", "watch_async", "watch_sync"]

# Where the watch hangs on the stream instance, so the class-level close() hook can find it.
WATCH_KEY = "_otel_claude_watch"


class StreamWatch:
    """Per-stream state. Holds no reference to the stream, so dropping the stream frees (and ends) it."""

    __slots__ = ("call", "collector", "skip_deltas", "text", "text_room")

    def __init__(self, call: Call) -> None:
        self.call = call
        call.usage = UsageReading()
        self.text: list[str] | None = [] if call.config.capture_content else None
        # Only a call sampled for paired evaluation rebuilds its answer (text and tool-call arguments) to grade it.
        self.collector = call.pair.collector if call.pair is not None else None
        # Captured text stops growing once it holds more than the attribute can show: a long answer must not be
        # kept whole in memory for the few kB that are exported.
        self.text_room = call.config.max_content_chars + 1
        # Once the first delta has been timed, text deltas (nearly every event) need nothing unless content is
        # captured or collected: the stream wrappers then skip the call into on_event for them.
        self.skip_deltas = False

    def on_event(self, event: Any) -> None:
        call = self.call
        if call.ended:
            return
        try:
            if self.collector is not None:
                self.collector.on_event(event)
            kind = event.type
            if kind == "content_block_delta":
                if not call.first_token_ns:
                    call.first_token_ns = time.time_ns()
                    self.skip_deltas = self.text is None and self.collector is None
                if self.text is not None and self.text_room > 0:
                    text = getattr(event.delta, "text", None)
                    if text:
                        self.text.append(text[: self.text_room])
                        self.text_room -= len(text)
                        # Full: later deltas need nothing (unless an evaluation collects the answer).
                        self.skip_deltas = self.text_room <= 0 and self.collector is None
            elif kind == "message_start":
                message = event.message
                call.read_message(message)
                # message_start's output_tokens is a placeholder; message_delta carries the real, cumulative count.
                call.usage.output = None  # type: ignore[union-attr]
            elif kind == "message_delta":
                call.usage.merge(event.usage)  # type: ignore[union-attr]
                stop = field(event.delta, "stop_reason")
                if isinstance(stop, str):
                    call.finish_reason = stop
            elif kind == "message_stop":
                self._finish(None, complete=True)
            elif kind == "completion":  # legacy /v1/complete streams (0.x SDKs)
                if not call.first_token_ns:
                    call.first_token_ns = time.time_ns()
                stop = getattr(event, "stop_reason", None)
                if isinstance(stop, str):
                    call.finish_reason = stop
                    self._finish(None, complete=True)
        except Exception:
            report_failure("reading a stream event")

    def _finish(self, error: BaseException | None, *, complete: bool) -> None:
        call = self.call
        if call.ended:
            return
        if not complete and call.usage is not None:
            # An early exit has no final count: report none rather than a partial one.
            call.usage.output = None
        if self.text is not None:
            call.output_content = call.config.encode([{"role": "assistant", "content": "".join(self.text)}])
        call.end(error, complete=complete)

    def exhausted(self) -> None:
        self._finish(None, complete=False)

    def failed(self, error: BaseException) -> None:
        self._finish(error, complete=False)

    def closed(self) -> None:
        self._finish(None, complete=False)

    def __del__(self) -> None:
        if not self.call.ended:
            self._finish(None, complete=False)


# Two loops: until the first content delta every event goes to on_event; after it (when no content is captured)
# only the non-delta events do, and the per-event work is one attribute read and one comparison. The check is
# inlined on purpose: a helper call per event would double what the watch costs on a long stream.
def watch_sync(inner: Iterator[Any], watch: StreamWatch) -> Iterator[Any]:
    on_event = watch.on_event
    try:
        for event in inner:
            on_event(event)
            yield event
            if watch.skip_deltas:
                break
        for event in inner:
            try:
                delta = event.type == "content_block_delta"
            except Exception:
                delta = False
            if not delta:
                on_event(event)
            yield event
    except GeneratorExit:
        watch.closed()
        raise
    except BaseException as err:
        watch.failed(err)
        raise
    watch.exhausted()


async def watch_async(inner: AsyncIterator[Any], watch: StreamWatch) -> AsyncIterator[Any]:
    on_event = watch.on_event
    try:
        async for event in inner:
            on_event(event)
            yield event
            if watch.skip_deltas:
                break
        async for event in inner:
            try:
                delta = event.type == "content_block_delta"
            except Exception:
                delta = False
            if not delta:
                on_event(event)
            yield event
    except GeneratorExit:
        watch.closed()
        raise
    except BaseException as err:
        watch.failed(err)
        raise
    watch.exhausted()
