"""Jaeger JSON (UI download, `/api/traces`): tags become attributes; array attributes arrive as JSON strings."""

from __future__ import annotations

import json
from typing import Any

from tuner._issues import Issues, describe
from tuner._records import A_FINISH, WANTED, BadSpan, CallTable

# Jaeger stores OTel array attributes as JSON text; these are the arrays the tuner reads.
_ARRAY_KEYS = frozenset({A_FINISH})


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


def read_document(document: dict[str, Any], table: CallTable, issues: Issues, where: str) -> None:
    traces = document.get("data")
    if not isinstance(traces, list):
        issues.skip("bad trace", where, "'data' is not a list")
        return
    for trace_number, trace in enumerate(traces):
        spans = trace.get("spans") if isinstance(trace, dict) else None
        if not isinstance(spans, list):
            issues.skip("bad trace", f"{where}: data[{trace_number}]", "trace without a 'spans' list")
            continue
        for number, span in enumerate(spans):
            try:
                attrs = {tag["key"]: _tag_value(tag) for tag in span.get("tags") or () if tag["key"] in WANTED}
                start_ns = int(span["startTime"]) * 1000
                table.add_span(span.get("operationName", ""), start_ns, start_ns + int(span["duration"]) * 1000, attrs)
            except (BadSpan, KeyError, TypeError, ValueError, OverflowError, AttributeError) as err:
                issues.skip("bad span", f"{where}: data[{trace_number}].spans[{number}]", describe(err))
