"""The rows the rate-limit decisions read: one per chat call span, with its timing, outcome and rate-limit headers.

A second pass over the same OTLP JSON / Jaeger files the call table reads, keeping only these attributes. It stays
separate from `_records`/`_otlp`/`_jaeger` while those are being reworked; once the call table carries the columns
listed in `COLUMNS`, building `LimitRows` from it replaces this pass.
"""

from __future__ import annotations

import itertools
import json
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from otel_claude import semconv as sc
from tuner._sources import Progress, expand_inputs, records

# error codes of a call
OK, RATE_LIMITED, OVERLOADED, OTHER_ERROR, ADMISSION_TIMEOUT = range(5)
_ERRORS = {"rate_limit_error": RATE_LIMITED, "overloaded_error": OVERLOADED,
           sc.ADMISSION_TIMEOUT_ERROR: ADMISSION_TIMEOUT}
_LIMITS = tuple(limit for limit, _ in sc.RATELIMIT_READINGS)
_REMAINING = tuple(remaining for _, remaining in sc.RATELIMIT_READINGS)
# What the rows need beyond the call table's columns (the column a future call table would hold, per attribute).
COLUMNS = {
    sc.ERROR_TYPE: "error (the call table keeps only 'error or not')",
    sc.RETRIES: "retries",
    sc.ADMISSION_WAIT: "admission_wait",
    sc.GEN_AI_REQUEST_STREAM: "stream",
    **{name: f"ratelimit_limit[{kind}]" for kind, name in enumerate(_LIMITS)},
    **{name: f"ratelimit_remaining[{kind}]" for kind, name in enumerate(_REMAINING)},
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
    def __init__(self) -> None:
        self.models: dict[str, int] = {}
        self.ints = {name: array("q") for name in ("model", "start", "end", "error", "retries", "max_tokens",
                                                    "output", "input")}
        self.floats = {name: array("d") for name in ("wait", "ttft")}
        self.stream = array("b")
        self.limit = array("q")
        self.remaining = array("q")

    def add(self, start_ns: int, end_ns: int, attrs: Mapping[str, Any]) -> None:
        model = attrs.get(sc.GEN_AI_REQUEST_MODEL)
        if attrs.get(sc.GEN_AI_OPERATION_NAME) != sc.CHAT_OPERATION or not isinstance(model, str) or not model:
            return
        if not 0 < start_ns <= end_ns:
            return
        error = attrs.get(sc.ERROR_TYPE)
        total_in = _int(attrs, sc.GEN_AI_USAGE_INPUT_TOKENS)
        cached = _int(attrs, sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)
        ints = self.ints
        ints["model"].append(self.models.setdefault(model, len(self.models)))
        ints["start"].append(start_ns)
        ints["end"].append(end_ns)
        ints["error"].append(OK if error is None else _ERRORS.get(str(error), OTHER_ERROR))
        ints["retries"].append(_int(attrs, sc.RETRIES))
        ints["max_tokens"].append(_int(attrs, sc.GEN_AI_REQUEST_MAX_TOKENS))
        ints["output"].append(_int(attrs, sc.GEN_AI_USAGE_OUTPUT_TOKENS))
        ints["input"].append(total_in - max(cached, 0) if total_in >= 0 else -1)
        self.floats["wait"].append(max(_float(attrs, sc.ADMISSION_WAIT), 0.0) if sc.ADMISSION_WAIT in attrs else 0.0)
        self.floats["ttft"].append(_float(attrs, sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK))
        self.stream.append(attrs.get(sc.GEN_AI_REQUEST_STREAM) is True)
        self.limit.extend(_int(attrs, name) for name in _LIMITS)
        self.remaining.extend(_int(attrs, name) for name in _REMAINING)

    def rows(self) -> LimitRows:
        ints = {name: np.frombuffer(values, dtype=np.int64) if len(values) else np.zeros(0, np.int64)
                for name, values in self.ints.items()}
        floats = {name: np.frombuffer(values, dtype=np.float64) if len(values) else np.zeros(0)
                  for name, values in self.floats.items()}
        return LimitRows(
            models=list(self.models),
            model=ints["model"], start_ns=ints["start"], end_ns=ints["end"], error=ints["error"],
            retries=ints["retries"], wait=floats["wait"], stream=np.array(self.stream, dtype=bool),
            ttft=floats["ttft"], max_tokens=ints["max_tokens"], output=ints["output"], input_uncached=ints["input"],
            limit=np.array(self.limit, dtype=np.int64).reshape(-1, 3),
            remaining=np.array(self.remaining, dtype=np.int64).reshape(-1, 3),
        )


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


def read_limit_rows(inputs: list[str]) -> LimitRows:
    """Rows for every readable chat call span in the inputs; what cannot be read is skipped (the main pass reports
    it)."""
    collector = _Collector()
    for path in expand_inputs(inputs):
        for document in _documents(path):
            _add(document, collector)
    return collector.rows()
