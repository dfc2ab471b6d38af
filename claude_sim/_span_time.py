"""A span processor that moves every span to the scenario time it belongs to, keeping its duration.

The workload driver wraps its exporting processors with it. A span that ends inside `scenario_moment(at)` (the
driver sets one around each call and each feedback score) starts at `epoch + at` plus however long after the
moment began it started (a safety-net retry starts after the first attempt). On a real-time clock, or outside any
moment, a span starts at the clock's reading when it started. Durations, time to first token and the offsets of
span events within a span stay as measured.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor

from claude_sim._clock import ScenarioClock

__all__ = ["ScenarioTimeSpanProcessor", "scenario_moment"]

_MOMENT: ContextVar[tuple[float, int] | None] = ContextVar("claude_sim_moment", default=None)


@contextmanager
def scenario_moment(at: float) -> Iterator[None]:
    """Spans ending in this context belong to scenario time `at` (from now, in wall time)."""
    token = _MOMENT.set((at, time.time_ns()))
    try:
        yield
    finally:
        _MOMENT.reset(token)


class ScenarioTimeSpanProcessor(SpanProcessor):
    def __init__(self, inner: SpanProcessor, clock: ScenarioClock) -> None:
        self._inner = inner
        self._clock = clock

    def _start(self, wall_ns: int) -> int:
        moment = _MOMENT.get()
        if moment is None or not self._clock.fast_forward:
            return self._clock.unix_ns(wall_ns)
        at, began_ns = moment
        return round((self._clock.epoch + at) * 1e9) + max(0, wall_ns - began_ns)

    def _moved(self, span: ReadableSpan) -> ReadableSpan:
        if span.start_time is None:
            return span
        shift = self._start(span.start_time) - span.start_time
        events = [Event(event.name, event.attributes, event.timestamp + shift) for event in span.events]
        return ReadableSpan(
            name=span.name, context=span.context, parent=span.parent, resource=span.resource,
            attributes=span.attributes, events=events, links=span.links, kind=span.kind, status=span.status,
            start_time=span.start_time + shift,
            end_time=None if span.end_time is None else span.end_time + shift,
            instrumentation_scope=span.instrumentation_scope,
        )

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self._inner.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self._inner.on_end(self._moved(span))

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)
