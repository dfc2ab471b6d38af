"""A span exporter that moves every span to the scenario time it happened at, keeping its duration.

The workload driver wraps its exporters with it: a span started while the scenario clock read t is exported as
starting at `clock.epoch + t`, so a tuner reading the file sees the scenario's reuse gaps and feedback delays.
Durations, time to first token and the offsets of span events within a span stay as measured.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from claude_sim._clock import ScenarioClock

__all__ = ["ScenarioTimeSpanExporter"]


class ScenarioTimeSpanExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, clock: ScenarioClock) -> None:
        self._inner = inner
        self._clock = clock

    def _moved(self, span: ReadableSpan) -> ReadableSpan:
        if span.start_time is None:
            return span
        shift = self._clock.unix_ns(span.start_time) - span.start_time
        events = [Event(event.name, event.attributes, event.timestamp + shift) for event in span.events]
        return ReadableSpan(
            name=span.name, context=span.context, parent=span.parent, resource=span.resource,
            attributes=span.attributes, events=events, links=span.links, kind=span.kind, status=span.status,
            start_time=span.start_time + shift,
            end_time=None if span.end_time is None else span.end_time + shift,
            instrumentation_scope=span.instrumentation_scope,
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([self._moved(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)
