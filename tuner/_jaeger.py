"""Jaeger JSON: tags become attributes; array attributes arrive as JSON strings.

Three shapes hold the same traces (Jaeger's `model/json`): the UI download and `/api/traces` response
(`{"data": [trace, ...]}`), a bare trace object (`{"traceID": ..., "spans": [...]}`) and a list of them; jaeger-ui's
own upload accepts all three.
"""

from __future__ import annotations

import json
from typing import Any

from otel_claude import semconv as sc
from tuner._issues import Issues, describe
from tuner._records import WANTED, BadSpan, CallTable

# Jaeger stores OTel array attributes as JSON text; these are the arrays the tuner reads.
_ARRAY_KEYS = frozenset({sc.GEN_AI_RESPONSE_FINISH_REASONS})


def _is_trace(obj: Any) -> bool:
    return isinstance(obj, dict) and "traceID" in obj and isinstance(obj.get("spans"), list)


def traces_of(obj: Any) -> tuple[Any, str] | None:
    """(the traces, how to name them in messages) when `obj` is Jaeger JSON of any shape, else None."""
    if isinstance(obj, dict) and "data" in obj:
        return obj["data"], "data"
    if _is_trace(obj):
        return [obj], "trace"
    if isinstance(obj, list) and obj and all(_is_trace(item) for item in obj):
        return obj, ""
    return None


def _tag_value(tag: dict[str, Any]) -> Any:
    value = tag.get("value")
    kind = tag.get("type", "string")
    if kind == "int64" and isinstance(value, str):
        return int(value)
    if kind == "float64" and isinstance(value, str):
        return float(value)
    if kind == "bool" and isinstance(value, str):
        return value.lower() == "true"
    if tag.get("key") in _ARRAY_KEYS and isinstance(value, str) and value.startswith("["):
        return json.loads(value)
    return value


def read_traces(traces: Any, label: str, table: CallTable, issues: Issues, where: str) -> None:
    if not isinstance(traces, list):
        issues.skip("bad trace", where, f"{label!r} is not a list")
        return
    for trace_number, trace in enumerate(traces):
        at = f"{where}: {label}[{trace_number}]"
        spans = trace.get("spans") if isinstance(trace, dict) else None
        if not isinstance(spans, list):
            issues.skip("bad trace", at, "trace without a 'spans' list")
            continue
        for number, span in enumerate(spans):
            try:
                attrs = {tag["key"]: _tag_value(tag) for tag in span.get("tags") or () if tag["key"] in WANTED}
                start_ns = int(span["startTime"]) * 1000
                table.add_span(span.get("operationName", ""), start_ns, start_ns + int(span["duration"]) * 1000, attrs)
            except (BadSpan, KeyError, TypeError, ValueError, OverflowError, AttributeError) as err:
                issues.skip("bad span", f"{at}.spans[{number}]", describe(err))
