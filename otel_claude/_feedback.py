"""Quality scores for finished calls, joinable to them by `gen_ai.response.id`."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind

from . import semconv as sc
from ._quality import QualityTotals
from ._safety import report_failure

__all__ = ["CallIndex", "feedback_span"]


class CallIndex:
    """Recent response ids -> (span context, task), so feedback can link to its call. Bounded, thread-safe."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._items: OrderedDict[str, tuple[SpanContext, str | None, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def _after_fork_in_child(self) -> None:
        # The parent's calls stay joinable, but a lock another thread held at the fork would stay held.
        self._lock = threading.Lock()

    def remember(self, response_id: str, context: SpanContext, task: str | None, model: str | None = None) -> None:
        with self._lock:
            self._items[response_id] = (context, task, model)
            if len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def lookup(self, response_id: str) -> tuple[SpanContext, str | None, str | None] | None:
        """(span context, task, request model) of a recent call."""
        with self._lock:
            return self._items.get(response_id)


def _response_id(response_or_id: Any) -> str:
    if isinstance(response_or_id, str):
        return response_or_id
    value = getattr(response_or_id, "id", None)
    if value is None and isinstance(response_or_id, dict):
        value = response_or_id.get("id")
    if not isinstance(value, str) or not value:
        raise ValueError("otel_claude.feedback() needs a Message (or anything with an .id) or a response id string")
    return value


def feedback_span(
    tracer: trace.Tracer, index: CallIndex, response_or_id: Any, score: float, label: str | None,
    quality: QualityTotals | None = None,
) -> None:
    response_id = _response_id(response_or_id)
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        raise TypeError("otel_claude.feedback() score must be a number")
    try:
        attrs: dict[str, Any] = {
            sc.GEN_AI_RESPONSE_ID: response_id,
            sc.GEN_AI_EVALUATION_NAME: sc.FEEDBACK_EVALUATION_NAME,
            sc.GEN_AI_EVALUATION_SCORE_VALUE: float(score),
        }
        if label is not None:
            attrs[sc.GEN_AI_EVALUATION_SCORE_LABEL] = str(label)
        known = index.lookup(response_id)
        links = []
        parent = None
        if known is not None:
            # A child of the call it scores (a trace view shows it there) and a link (for readers that follow links).
            parent = trace.set_span_in_context(NonRecordingSpan(known[0]))
            links.append(Link(known[0]))
            if known[1] is not None:
                attrs[sc.TASK] = known[1]
        span = tracer.start_span(sc.FEEDBACK_SPAN, context=parent, kind=SpanKind.INTERNAL, attributes=attrs,
                                 links=links)
        span.add_event(sc.EVALUATION_RESULT_EVENT, attributes=attrs)
        span.end()
        if quality is not None:
            quality.add_score(known[2] if known is not None else None, attrs.get(sc.TASK), float(score))
    except Exception:
        report_failure("recording feedback")
