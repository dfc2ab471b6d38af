"""OTLP JSON: one ExportTraceServiceRequest mapping to spans of the call table.

Proto3 JSON writes int64 as strings; both strings and numbers are accepted, unknown fields are ignored.
"""

from __future__ import annotations

from typing import Any

from tuner._issues import Issues, describe
from tuner._records import WANTED, BadSpan, CallTable


def _value(wrapped: dict[str, Any]) -> Any:
    for kind, value in wrapped.items():
        if kind == "intValue":
            return int(value)
        if kind == "arrayValue":
            return [_value(item) for item in value.get("values", ())]
        if kind in ("stringValue", "doubleValue", "boolValue"):
            return value
    return None


def _items(parent: Any, key: str, issues: Issues, where: str) -> list[Any]:
    """The list under `key` of a mapping; any other shape is reported once and read as empty."""
    value = parent.get(key) if isinstance(parent, dict) else None
    if isinstance(value, list) or (value is None and isinstance(parent, dict)):
        return value or []
    got = type(value).__name__ if isinstance(parent, dict) else f"a {type(parent).__name__} around it"
    issues.skip("bad request", where, f"{key!r} must be a list inside a mapping, got {got}")
    return []


def read_request(request: dict[str, Any], table: CallTable, issues: Issues, where: str) -> None:
    """Add every span of one request; a span that cannot be read is skipped and reported at `where`."""
    for resource_spans in _items(request, "resourceSpans", issues, where):
        for scope_spans in _items(resource_spans, "scopeSpans", issues, where):
            for number, span in enumerate(_items(scope_spans, "spans", issues, where)):
                try:
                    attrs = {}
                    for attribute in span.get("attributes") or ():
                        key = attribute["key"]
                        if key in WANTED:
                            try:
                                attrs[key] = _value(attribute["value"])
                            except ValueError:
                                raise BadSpan(f"attribute {key!r} has a bad value {attribute['value']!r}") from None
                    table.add_span(
                        span.get("name", ""), int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"]), attrs
                    )
                except (BadSpan, KeyError, TypeError, ValueError, OverflowError, AttributeError) as err:
                    issues.skip("bad span", f"{where}: span {number}", describe(err))
