"""The rows the rate-limit decisions read: one per chat call span, with its timing, outcome and rate-limit headers.

From OTLP JSON / Jaeger files, a second pass over the same files the call table reads, keeping only these
attributes (it stays separate from `_records`/`_otlp`/`_jaeger` while those are being reworked; once the call table
carries the columns listed in `COLUMNS`, building `LimitRows` from it replaces this pass). From ClickHouse, one query
(`tuner._clickhouse`, `_Queries.limit_calls`) returns these rows already typed, for the most recent calls of the
window. Both paths go through `limit_rows`, so the same spans give the same rows.
"""

from __future__ import annotations

import itertools
import json
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from otel_claude import semconv as sc
from tuner._sources import Progress, expand_inputs, records
from tuner._window import ALL_TIME, Window

# error codes of a call
OK, RATE_LIMITED, OVERLOADED, OTHER_ERROR, ADMISSION_TIMEOUT = range(5)
# error.type -> error code; any other error.type is OTHER_ERROR, none is OK
ERROR_CODES = {sc.RATE_LIMIT_ERROR: RATE_LIMITED, sc.OVERLOADED_ERROR: OVERLOADED,
               sc.ADMISSION_TIMEOUT_ERROR: ADMISSION_TIMEOUT}
LIMITS = tuple(limit for limit, _ in sc.RATELIMIT_READINGS)
REMAINING = tuple(remaining for _, remaining in sc.RATELIMIT_READINGS)
# The fields of one row as `limit_rows` takes it (named as in LimitRows): model (a name), these, stream (bool),
# limit and remaining (3 each).
INT_FIELDS = ("start_ns", "end_ns", "error", "retries", "max_tokens", "output", "input_uncached")  # -1: unknown
FLOAT_FIELDS = ("wait", "ttft")
# What the rows need beyond the call table's columns (the column a future call table would hold, per attribute).
COLUMNS = {
    sc.ERROR_TYPE: "error (the call table keeps only 'error or not')",
    sc.RETRIES: "retries",
    sc.ADMISSION_WAIT: "admission_wait",
    sc.GEN_AI_REQUEST_STREAM: "stream",
    **{name: f"ratelimit_limit[{kind}]" for kind, name in enumerate(LIMITS)},
    **{name: f"ratelimit_remaining[{kind}]" for kind, name in enumerate(REMAINING)},
}
_WANTED = frozenset({
    sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_REQUEST_MODEL, sc.TASK, sc.GEN_AI_REQUEST_MAX_TOKENS,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS, sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, *COLUMNS,
})


@dataclass(frozen=True)
class LimitRows:
    models: list[str]
    model: np.ndarray  # index into models
    start_ns: np.ndarray
    end_ns: np.ndarray
    error: np.ndarray  # OK, RATE_LIMITED, ...
    retries: np.ndarray  # -1: unknown
    wait: np.ndarray  # admission wait, s (0 when none)
    stream: np.ndarray  # bool
    ttft: np.ndarray  # s, nan when unknown
    max_tokens: np.ndarray  # -1: unknown
    output: np.ndarray  # -1: unknown
    input_uncached: np.ndarray  # input tokens that count against the input limit (no cache reads); -1: unknown
    limit: np.ndarray  # (n, 3): requests, input tokens, output tokens per minute; -1: no header
    remaining: np.ndarray  # (n, 3); -1: no header

    def __len__(self) -> int:
        return len(self.start_ns)

    def service_seconds(self) -> np.ndarray:
        """Duration without the admission wait: how long the API held the call."""
        return (self.end_ns - self.start_ns) / 1e9 - self.wait


class _Collector:
    def __init__(self, window: Window = ALL_TIME) -> None:
        self.models: dict[str, int] = {}
        self.model = array("q")
        self.ints = {name: array("q") for name in INT_FIELDS}
        self.floats = {name: array("d") for name in FLOAT_FIELDS}
        self.stream = array("b")
        self.limit = array("q")
        self.remaining = array("q")
        self._since = -1 if window.since_ns is None else window.since_ns
        self._until = 2**63 if window.until_ns is None else window.until_ns

    def add(self, start_ns: int, end_ns: int, attrs: Mapping[str, Any]) -> None:
        """A span as read from a file: its attributes become a row (ClickHouse computes the same in SQL)."""
        model = attrs.get(sc.GEN_AI_REQUEST_MODEL)
        if attrs.get(sc.GEN_AI_OPERATION_NAME) != sc.CHAT_OPERATION or not isinstance(model, str) or not model:
            return
        if not 0 < start_ns <= end_ns or not self._since <= start_ns < self._until:
            return
        error = attrs.get(sc.ERROR_TYPE)
        total_in = _int(attrs, sc.GEN_AI_USAGE_INPUT_TOKENS)
        cached = _int(attrs, sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)
        self.append({
            "model": model, "start_ns": start_ns, "end_ns": end_ns,
            "error": OK if error is None else ERROR_CODES.get(str(error), OTHER_ERROR),
            "retries": _int(attrs, sc.RETRIES),
            "max_tokens": _int(attrs, sc.GEN_AI_REQUEST_MAX_TOKENS),
            "output": _int(attrs, sc.GEN_AI_USAGE_OUTPUT_TOKENS),
            "input_uncached": total_in - max(cached, 0) if total_in >= 0 else -1,
            "wait": max(_float(attrs, sc.ADMISSION_WAIT), 0.0) if sc.ADMISSION_WAIT in attrs else 0.0,
            "ttft": _float(attrs, sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK),
            "stream": attrs.get(sc.GEN_AI_REQUEST_STREAM) is True,
            "limit": [_int(attrs, name) for name in LIMITS],
            "remaining": [_int(attrs, name) for name in REMAINING],
        })

    def append(self, row: Mapping[str, Any]) -> None:
        self.model.append(self.models.setdefault(row["model"], len(self.models)))
        for name, values in self.ints.items():
            values.append(row[name])
        for name, numbers in self.floats.items():
            numbers.append(row[name])
        self.stream.append(row["stream"])
        self.limit.extend(row["limit"])
        self.remaining.extend(row["remaining"])

    def rows(self) -> LimitRows:
        ints = {name: np.frombuffer(values, dtype=np.int64) if len(values) else np.zeros(0, np.int64)
                for name, values in {"model": self.model, **self.ints}.items()}
        floats = {name: np.frombuffer(values, dtype=np.float64) if len(values) else np.zeros(0)
                  for name, values in self.floats.items()}
        return LimitRows(
            models=list(self.models), **ints, **floats, stream=np.array(self.stream, dtype=bool),
            limit=np.array(self.limit, dtype=np.int64).reshape(-1, 3),
            remaining=np.array(self.remaining, dtype=np.int64).reshape(-1, 3),
        )


def limit_rows(rows: Iterable[Mapping[str, Any]]) -> LimitRows:
    """`LimitRows` from rows already typed (the fields `_Collector.add` computes), in the order given."""
    collector = _Collector()
    for row in rows:
        collector.append(row)
    return collector.rows()


def _int(attrs: Mapping[str, Any], name: str) -> int:
    value = attrs.get(name)
    if isinstance(value, bool) or value is None:
        return -1
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return -1
    return number if 0 <= number < 2**63 else -1


def _float(attrs: Mapping[str, Any], name: str) -> float:
    value = attrs.get(name)
    if isinstance(value, bool) or value is None:
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _otlp_value(wrapped: Any) -> Any:
    if isinstance(wrapped, dict):
        for kind, value in wrapped.items():
            if kind in ("stringValue", "intValue", "doubleValue", "boolValue"):
                return value
    return None


_SKIP = (KeyError, TypeError, ValueError, AttributeError, OverflowError)


def _add_otlp(document: dict[str, Any], collector: _Collector) -> None:
    for resource_spans in document.get("resourceSpans") or ():
        for scope_spans in resource_spans.get("scopeSpans") or ():
            for span in scope_spans.get("spans") or ():
                try:
                    attrs = {a["key"]: _otlp_value(a.get("value")) for a in span.get("attributes") or ()
                             if a.get("key") in _WANTED}
                    collector.add(int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"]), attrs)
                except _SKIP:
                    continue


def _jaeger_value(tag: dict[str, Any]) -> Any:
    value = tag.get("value")
    if tag.get("type") == "bool" and isinstance(value, str):
        return value.lower() == "true"
    return value


def _add_jaeger(document: dict[str, Any], collector: _Collector) -> None:
    for trace in document.get("data") or ():
        for span in trace.get("spans") or ():
            try:
                attrs = {tag["key"]: _jaeger_value(tag) for tag in span.get("tags") or () if tag.get("key") in _WANTED}
                start_ns = int(span["startTime"]) * 1000
                collector.add(start_ns, start_ns + int(span["duration"]) * 1000, attrs)
            except _SKIP:
                continue


def _add(document: Any, collector: _Collector) -> None:
    try:
        if isinstance(document, dict) and "resourceSpans" in document:
            _add_otlp(document, collector)
        elif isinstance(document, dict) and "data" in document:
            _add_jaeger(document, collector)
    except _SKIP:  # a malformed request around the spans; the main pass reports it
        return


def _documents(path: Path) -> Iterator[Any]:
    """Each JSON document of a file, read as the main pass reads it: one per line, or the whole file when it opens
    with a lone bracket (a pretty-printed Jaeger download)."""
    numbered = records(path, Progress(1, False))
    first = next((record for _, record in numbered if record.strip()), None)
    if first is None:
        return
    if len(first) < 64 and first.strip() in (b"{", b"["):
        try:
            yield json.loads(b"".join(itertools.chain((first,), (record for _, record in numbered))))
        except ValueError:
            return
        return
    for record in itertools.chain((first,), (record for _, record in numbered)):
        try:
            yield json.loads(record)
        except ValueError:
            continue


def read_limit_rows(inputs: list[str], window: Window = ALL_TIME) -> LimitRows:
    """Rows for every readable chat call span in the inputs that starts in the window; what cannot be read is
    skipped (the main pass reports it)."""
    collector = _Collector(window)
    for path in expand_inputs(inputs):
        for document in _documents(path):
            _add(document, collector)
    return collector.rows()
