"""Recorders for the reliability tests: a span processor that proves each span ends exactly once, and a log
handler that sees every swallowed internal failure."""

from __future__ import annotations

import logging
import threading
from collections import Counter

from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor


class EndCounter(SpanProcessor):
    """Counts starts and ends per span id. The SDK ignores a second `end()`, so a double end shows up only as its
    warning: `warnings` collects the SDK's and the instrumentor's log records too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started: Counter[int] = Counter()
        self.ended: Counter[int] = Counter()
        self.finished: list[ReadableSpan] = []

    def on_start(self, span: Span, parent_context: object = None) -> None:
        with self._lock:
            self.started[span.context.span_id] += 1

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self.ended[span.context.span_id] += 1
            self.finished.append(span)

    def reset(self) -> None:
        with self._lock:
            self.started.clear()
            self.ended.clear()
            self.finished.clear()

    def open_spans(self) -> int:
        with self._lock:
            return sum(1 for span_id in self.started if span_id not in self.ended)


class LogCatcher(logging.Handler):
    """Warnings from the instrumentor (swallowed internal failures) and the OpenTelemetry SDK (double ends)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [record.getMessage() for record in self.records]

    def problems(self) -> list[str]:
        """Swallowed internal failures (logged at debug after the first per site) and double span ends."""
        return [f"{r.name}: {r.getMessage()}" for r in self.records
                if "failure while" in r.getMessage() or "ended span" in r.getMessage()]
