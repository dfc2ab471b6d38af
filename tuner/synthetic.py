"""Synthetic call and feedback spans with a known right answer, in every format the tuner reads.

For tests and benchmarks of the tuner. Attributes follow docs/telemetry.md; OTLP lines are encoded by the
instrumentor's own exporter code, so a format drift there shows up here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind

from otel_claude import semconv as sc
from otel_claude.catalog import Usage, cost_usd, resolve
from otel_claude.otlp_file import encode_request

_RESOURCE = Resource.create({"service.name": "synthetic"})
_SCOPE = InstrumentationScope("otel_claude", "0.1.0")


@dataclass(frozen=True)
class Span:
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    kind: SpanKind = SpanKind.CLIENT


def call(
    *,
    start_ns: int,
    model: str,
    output_tokens: int,
    input_tokens: int = 1000,
    task: str | None = None,
    max_tokens: int = 1024,
    response_id: str | None = None,
    finish: str | None = None,
    prefix: str | None = None,
    prefix_tokens: int = 0,
    cache_read: int = 0,
    cache_write: int = 0,
    ttft: float | None = None,
    duration_s: float = 1.0,
    error: str | None = None,
    exploration: bool = False,
    requested_max_tokens: int | None = None,
    requested_model: str | None = None,
    cancelled: bool = False,
    role: str | None = None,
) -> Span:
    """A chat call span; finish defaults to max_tokens when the output reached the cap, end_turn otherwise.

    `cancelled`: the caller abandoned the call, recorded as the instrumentor does (no response, no error.type).
    `role`: a call the instrumentor made itself for paired evaluation (`shadow` or `judge`).
    """
    attrs: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: sc.CHAT_OPERATION,
        sc.GEN_AI_PROVIDER_NAME: "anthropic",
        sc.GEN_AI_REQUEST_MODEL: model,
        sc.GEN_AI_REQUEST_MAX_TOKENS: max_tokens,
        sc.GEN_AI_REQUEST_STREAM: ttft is not None,
        sc.SERVER_ADDRESS: "127.0.0.1",
        sc.SERVER_PORT: 8080,
        sc.INPUT_TOKENS_ESTIMATE: input_tokens,
        sc.RETRIES: 0,
    }
    if task is not None:
        attrs[sc.TASK] = task
    if prefix is not None:
        attrs[sc.PREFIX_FINGERPRINT] = prefix
        attrs[sc.PREFIX_TOKENS_ESTIMATE] = prefix_tokens
    if cancelled:
        attrs[sc.CANCELLED] = True
        if ttft is not None:
            attrs[sc.STREAM_COMPLETE] = False
    elif error is not None:
        attrs[sc.ERROR_TYPE] = error
    else:
        output = min(output_tokens, max_tokens)
        reason = finish or ("max_tokens" if output_tokens >= max_tokens else "end_turn")
        uncached = input_tokens - cache_read - cache_write
        info = resolve(model)
        attrs.update(
            {
                sc.GEN_AI_RESPONSE_ID: response_id or f"msg_{start_ns:x}",
                sc.GEN_AI_RESPONSE_MODEL: model,
                sc.GEN_AI_RESPONSE_FINISH_REASONS: [reason],
                sc.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
                sc.GEN_AI_USAGE_OUTPUT_TOKENS: output,
                sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: cache_read,
                sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: cache_write,
                sc.ANTHROPIC_UNCACHED_INPUT_TOKENS: uncached,
            }
        )
        if info is not None:
            usage = Usage(uncached, output, cache_read, cache_write)
            attrs[sc.COST_USD] = cost_usd(info, usage)
        if ttft is not None:
            attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = ttft
            attrs[sc.STREAM_COMPLETE] = True
    if exploration:
        attrs[sc.POLICY_EXPLORATION] = True
    if requested_max_tokens is not None:
        attrs[sc.POLICY_REQUESTED_MAX_TOKENS] = requested_max_tokens
    if requested_model is not None:  # a policy routed the call to `model`
        attrs[sc.POLICY_REQUESTED_MODEL] = requested_model
    if role is not None:
        attrs[sc.EVALUATION_ROLE] = role
    end = start_ns + int(duration_s * 1e9)
    return Span(f"chat {model}", start_ns, end, attrs)


def feedback(*, start_ns: int, response_id: str, score: float, task: str | None = None) -> Span:
    attrs: dict[str, Any] = {
        sc.GEN_AI_RESPONSE_ID: response_id,
        sc.GEN_AI_EVALUATION_NAME: sc.FEEDBACK_EVALUATION_NAME,
        sc.GEN_AI_EVALUATION_SCORE_VALUE: float(score),
    }
    if task is not None:
        attrs[sc.TASK] = task
    return Span(sc.FEEDBACK_SPAN, start_ns, start_ns + 1000, attrs, SpanKind.INTERNAL)


def verdict(*, start_ns: int, response_id: str, incumbent: str, candidate: str, value: float,
            task: str | None = None, label: str | None = None, grader: str = "exact") -> Span:
    """A paired verdict span: `value` = the candidate's quality minus the incumbent's on one request."""
    if label is None:
        label = "agree" if value == 0 else "candidate_better" if value > 0 else "candidate_worse"
    attrs: dict[str, Any] = {
        sc.GEN_AI_RESPONSE_ID: response_id,
        sc.GEN_AI_EVALUATION_NAME: grader,
        sc.GEN_AI_EVALUATION_SCORE_VALUE: float(value),
        sc.GEN_AI_EVALUATION_SCORE_LABEL: label,
        sc.EVALUATION_INCUMBENT_MODEL: incumbent,
        sc.EVALUATION_CANDIDATE_MODEL: candidate,
        sc.EVALUATION_CANDIDATE_RESPONSE_ID: f"{response_id}-shadow",
    }
    if task is not None:
        attrs[sc.TASK] = task
    return Span(sc.VERDICT_SPAN, start_ns, start_ns + 1000, attrs, SpanKind.INTERNAL)


def readable(span: Span, number: int) -> ReadableSpan:
    """The span as the OpenTelemetry SDK hands it to exporters; `number` makes its trace and span ids."""
    context = SpanContext(trace_id=number + 1, span_id=number + 1, is_remote=False)
    return ReadableSpan(
        name=span.name,
        context=context,
        attributes=span.attributes,
        start_time=span.start_ns,
        end_time=span.end_ns,
        kind=span.kind,
        resource=_RESOURCE,
        instrumentation_scope=_SCOPE,
    )


def otlp_lines(spans: Iterable[Span], batch: int = 64) -> Iterator[str]:
    """OTLP JSON lines, one export request per `batch` spans, as the file exporter writes them."""
    pending: list[ReadableSpan] = []
    for number, span in enumerate(spans):
        pending.append(readable(span, number))
        if len(pending) == batch:
            yield json.dumps(encode_request(pending), separators=(",", ":"))
            pending = []
    if pending:
        yield json.dumps(encode_request(pending), separators=(",", ":"))


def write_otlp(path: str | Path, spans: Iterable[Span], batch: int = 64) -> Path:
    path = Path(path)
    with open(path, "w", encoding="utf-8") as out:
        for line in otlp_lines(spans, batch):
            out.write(line + "\n")
    return path


def jaeger_tag(key: str, value: Any) -> dict[str, Any]:
    """An attribute as a Jaeger JSON (model/json) tag, typed as the Collector's OTLP-to-Jaeger translator types it."""
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    if isinstance(value, (list, tuple)):
        # Jaeger has no array type: the OTLP translator stores arrays as (compact) JSON text.
        return {"key": key, "type": "string", "value": json.dumps(list(value), separators=(",", ":"))}
    return {"key": key, "type": "string", "value": str(value)}


def jaeger_document(spans: Iterable[Span]) -> dict[str, Any]:
    """A Jaeger UI download / `/api/traces` response holding the spans, one trace each."""
    traces = []
    for number, span in enumerate(spans):
        trace_id = format(number + 1, "032x")
        traces.append(
            {
                "traceID": trace_id,
                "spans": [
                    {
                        "traceID": trace_id,
                        "spanID": format(number + 1, "016x"),
                        "operationName": span.name,
                        "references": [],
                        "startTime": span.start_ns // 1000,
                        "duration": (span.end_ns - span.start_ns) // 1000,
                        "tags": [jaeger_tag(k, v) for k, v in span.attributes.items()],
                        "logs": [],
                        "processID": "p1",
                    }
                ],
                "processes": {"p1": {"serviceName": "synthetic", "tags": []}},
            }
        )
    return {"data": traces, "total": 0, "limit": 0, "offset": 0, "errors": None}
