"""OTLP JSON: one ExportTraceServiceRequest (or TracesData) mapping to spans of the call table.

Two spellings are read: the protobuf JSON mapping's lowerCamelCase (`resourceSpans`, `startTimeUnixNano`: the
Collector, the SDKs, Jaeger's api/v3) and the proto field names (`resource_spans`, `start_time_unix_nano`: protobuf
`json_format` with `preserving_proto_field_name`, which the Collector's JSON reader also accepts). Proto3 JSON writes
int64 as strings; both strings and numbers are accepted, unknown fields are ignored.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from tuner._issues import Issues, describe
from tuner._records import WANTED, BadSpan, CallTable


class _Names(NamedTuple):
    resource_spans: str
    scope_spans: str
    start: str
    end: str


_CAMEL = _Names("resourceSpans", "scopeSpans", "startTimeUnixNano", "endTimeUnixNano")
_SNAKE = _Names("resource_spans", "scope_spans", "start_time_unix_nano", "end_time_unix_nano")
_INT_KINDS = frozenset({"intValue", "int_value"})
_PLAIN_KINDS = frozenset({"stringValue", "doubleValue", "boolValue", "string_value", "double_value", "bool_value"})
_ARRAY_KINDS = frozenset({"arrayValue", "array_value"})


def request_names(obj: Any) -> _Names | None:
    """The spelling of an OTLP request (or None when `obj` is not one)."""
    if not isinstance(obj, dict):
        return None
    if _CAMEL.resource_spans in obj:
        return _CAMEL
    if _SNAKE.resource_spans in obj:
        return _SNAKE
    return None


def _value(wrapped: dict[str, Any]) -> Any:
    for kind, value in wrapped.items():
        if kind in _INT_KINDS:
            return int(value)
        if kind in _ARRAY_KINDS:
            return [_value(item) for item in value.get("values", ())]
        if kind in _PLAIN_KINDS:
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
    names = request_names(request) or _CAMEL
    for resource_spans in _items(request, names.resource_spans, issues, where):
        for scope_spans in _items(resource_spans, names.scope_spans, issues, where):
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
                    table.add_span(span.get("name", ""), int(span[names.start]), int(span[names.end]), attrs)
                except (BadSpan, KeyError, TypeError, ValueError, OverflowError, AttributeError) as err:
                    issues.skip("bad span", f"{where}: span {number}", describe(err))
