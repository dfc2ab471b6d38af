"""The Collector clickhouseexporter's traces tables, filled the way the exporter fills them, for the SQL path tests.

Both variants come from the exporter's own definitions (contrib exporter/clickhouseexporter/internal/sqltemplates:
traces_table.sql and traces_json_table.sql; exporter_traces.go / exporter_traces_json.go): the Map variant stores
every attribute as pcommon's `Value.AsString()` (doubles in ES6 number form, arrays as JSON), the JSON variant stores
`json.Marshal(attributes.AsRaw())` (typed values; Go writes a whole double such as 1.0 as `1`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tuner import synthetic as syn

MAP_TABLE = "otel_traces"
JSON_TABLE = "otel_traces_json"

# traces_table.sql (bloom-filter branch), database and cluster placeholders filled in.
MAP_DDL = f"""
CREATE TABLE IF NOT EXISTS {MAP_TABLE} (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(T64, ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (Timestamp DateTime64(9), Name LowCardinality(String), Attributes Map(LowCardinality(String), String))
        CODEC(ZSTD(1)),
    Links Nested (TraceId String, SpanId String, TraceState String, Attributes Map(LowCardinality(String), String))
        CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE = MergeTree()
PARTITION BY toDate(Timestamp)
PRIMARY KEY (ServiceName, SpanName, toDateTime(Timestamp))
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""

# traces_json_table.sql.
JSON_DDL = f"""
CREATE TABLE IF NOT EXISTS {JSON_TABLE} (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes JSON CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes JSON CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (Timestamp DateTime64(9), Name LowCardinality(String), Attributes JSON) CODEC(ZSTD(1)),
    Links Nested (TraceId String, SpanId String, TraceState String, Attributes JSON) CODEC(ZSTD(1)),
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE = MergeTree()
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)
SETTINGS index_granularity=8192, ttl_only_drop_parts = 1
"""


def go_float(value: float) -> str:
    """A float64 as Go's encoding/json (and pcommon's AsString) writes it: ES6 number to string."""
    if value == 0 or 1e-6 <= abs(value) < 1e21:
        return np.format_float_positional(value, trim="-")
    mantissa, exponent = np.format_float_scientific(value, trim="-").split("e")
    return f"{mantissa}e{int(exponent):+d}"


def go_json(value: Any) -> str:
    """json.Marshal of a pcommon AsRaw() value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        assert math.isfinite(value)
        return go_float(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(go_json(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{go_json(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def as_string(value: Any) -> str:
    """pcommon Value.AsString(): how the Map variant stores each attribute value."""
    if isinstance(value, (bool, int, float, list, tuple)):
        return go_json(value)
    return str(value)


def _sql(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _row(number: int, span: syn.Span, attributes: str) -> str:
    return (
        f"(fromUnixTimestamp64Nano(toInt64({span.start_ns})), '{number:032x}', '{number:016x}', '', '', "
        f"{_sql(span.name)}, 'Client', 'svc', {{resource}}, 'otel_claude', '0.1.0', {attributes}, "
        f"{span.end_ns - span.start_ns}, 'Unset', '', [], [], [], [], [], [], [])"
    )


def insert_statements(spans: list[syn.Span], table: str, batch: int = 200) -> list[str]:
    """INSERT statements filling `table` (either variant) with the spans, `batch` rows per statement."""
    rows = []
    for number, span in enumerate(spans):
        if table == JSON_TABLE:
            rows.append(_row(number, span, _sql(go_json(span.attributes))).replace("{resource}", "'{}'"))
        else:
            pairs = ", ".join(f"{_sql(k)}, {_sql(as_string(v))}" for k, v in span.attributes.items())
            rows.append(_row(number, span, f"map({pairs})").replace("{resource}", "map()"))
    return [f"INSERT INTO {table} VALUES " + ", ".join(rows[i : i + batch]) for i in range(0, len(rows), batch)]


@dataclass
class Loaded:
    """The spans in both tables of a chdb directory, in an OTLP file, and a loopback server over the directory."""

    runner: Any  # tuner._clickhouse_source.ChdbRunner
    spans: list[syn.Span]
    path: Path
    server: Any  # clickhouse_http.ChdbHttpServer
    file: Path


@contextmanager
def loaded_tables(directory: Path, file: Path, spans: list[syn.Span], user: str, password: str) -> Iterator[Loaded]:
    """chdb serves one data directory per process: a test module's tests share it, and so does the server."""
    from clickhouse_http import ChdbHttpServer

    from tuner._clickhouse_source import ChdbRunner

    runner = ChdbRunner(str(directory))
    try:
        for ddl, table in ((MAP_DDL, MAP_TABLE), (JSON_DDL, JSON_TABLE)):
            runner.rows(ddl)
            for statement in insert_statements(spans, table):
                runner.rows(statement)
        syn.write_otlp(file, spans)
        with ChdbHttpServer(runner._session, user, password) as server:
            yield Loaded(runner, spans, directory, server, file)
    finally:
        runner.close()
