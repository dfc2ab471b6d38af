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

from otel_claude.catalog import Usage, cost_usd, resolve
from otel_claude.otlp_file import encode_request
from tuner._records import FEEDBACK_SPAN

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
) -> Span:
    """A chat call span; finish defaults to max_tokens when the output reached the cap, end_turn otherwise."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": model,
        "gen_ai.request.max_tokens": max_tokens,
        "gen_ai.request.stream": ttft is not None,
        "server.address": "127.0.0.1",
        "server.port": 8080,
        "otel_claude.input.tokens_estimate": input_tokens,
        "otel_claude.retries": 0,
    }
    if task is not None:
        attrs["otel_claude.task"] = task
    if prefix is not None:
        attrs["otel_claude.prefix.fingerprint"] = prefix
        attrs["otel_claude.prefix.tokens_estimate"] = prefix_tokens
    if error is not None:
        attrs["error.type"] = error
    else:
        output = min(output_tokens, max_tokens)
        reason = finish or ("max_tokens" if output_tokens >= max_tokens else "end_turn")
        uncached = input_tokens - cache_read - cache_write
        info = resolve(model)
        attrs.update(
            {
                "gen_ai.response.id": response_id or f"msg_{start_ns:x}",
                "gen_ai.response.model": model,
                "gen_ai.response.finish_reasons": [reason],
                "gen_ai.usage.input_tokens": input_tokens,
                "gen_ai.usage.output_tokens": output,
                "gen_ai.usage.cache_read.input_tokens": cache_read,
                "gen_ai.usage.cache_creation.input_tokens": cache_write,
                "anthropic.usage.uncached_input_tokens": uncached,
            }
        )
        if info is not None:
            usage = Usage(uncached, output, cache_read, cache_write)
            attrs["otel_claude.cost_usd"] = cost_usd(info, usage)
        if ttft is not None:
            attrs["gen_ai.response.time_to_first_chunk"] = ttft
            attrs["otel_claude.stream.complete"] = True
    if exploration:
        attrs["otel_claude.policy.exploration"] = True
    if requested_max_tokens is not None:
        attrs["otel_claude.policy.requested_max_tokens"] = requested_max_tokens
    if requested_model is not None:  # a policy routed the call to `model`
        attrs["otel_claude.policy.requested_model"] = requested_model
    end = start_ns + int(duration_s * 1e9)
    return Span(f"chat {model}", start_ns, end, attrs)


def feedback(*, start_ns: int, response_id: str, score: float, task: str | None = None) -> Span:
    attrs: dict[str, Any] = {
        "gen_ai.response.id": response_id,
        "gen_ai.evaluation.name": "feedback",
        "gen_ai.evaluation.score.value": float(score),
    }
    if task is not None:
        attrs["otel_claude.task"] = task
    return Span(FEEDBACK_SPAN, start_ns, start_ns + 1000, attrs, SpanKind.INTERNAL)


def _readable(span: Span, number: int) -> ReadableSpan:
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
        pending.append(_readable(span, number))
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


def _tag(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    if isinstance(value, (list, tuple)):
        # Jaeger has no array type: the OTLP translator stores arrays as JSON text.
        return {"key": key, "type": "string", "value": json.dumps(list(value))}
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
                        "tags": [_tag(k, v) for k, v in span.attributes.items()],
                        "logs": [],
                        "processID": "p1",
                    }
                ],
                "processes": {"p1": {"serviceName": "synthetic", "tags": []}},
            }
        )
    return {"data": traces, "total": 0, "limit": 0, "offset": 0, "errors": None}


def clickhouse_attributes(span: Span) -> dict[str, str]:
    """SpanAttributes as the Collector's ClickHouse exporter stores them: every value as a string."""
    out = {}
    for key, value in span.attributes.items():
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            out[key] = json.dumps(list(value))
        else:
            out[key] = str(value)
    return out
