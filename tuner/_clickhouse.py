"""ClickHouse `otel_traces` (the Collector's clickhouseexporter schema): the tuner's dataset computed in SQL.

Grouping, counts, means, quantiles, the feedback join, the length samples and the reuse gaps run inside ClickHouse;
only one row per (task, model) with a bounded hash-ordered sample of its output lengths, one row per (task, prefix)
and one row of totals leave it. That is what lets the tuner serve a fleet whose traces no longer fit one machine.

The exporter writes `SpanAttributes` either as `Map(LowCardinality(String), String)` (values as text, arrays as
JSON text) or, in its JSON variant, as a `JSON` column (typed values, dotted keys as nested paths). The column's
type is read first and every attribute is read as text through `_Attributes`, so the rest of the SQL is shared.
The data window is pushed into `WHERE` on `Timestamp`, whose date is the partition key: a tune reads the days it
covers, not the whole table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from otel_claude import semconv as sc
from tuner._dataset import (
    COST_UNITS_PER_USD,
    SAMPLE_LIMIT,
    TTL_SECONDS,
    Dataset,
    LatencySplit,
    ModelStats,
    PrefixStats,
    Quality,
    verdict_streams,
)
from tuner._issues import TraceInputError
from tuner._limits_input import (
    ERROR_CODES,
    FLOAT_FIELDS,
    INT_FIELDS,
    LIMITS,
    OK,
    OTHER_ERROR,
    REMAINING,
    LimitRows,
    limit_rows,
)
from tuner._records import CACHE_WRITE_ATTRIBUTES, CANCELLATION_ERRORS, UNLABELLED, UNSETTLED, Verdict
from tuner._window import ALL_TIME, Window

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_KEY = re.compile(r"^[A-Za-z0-9_.]+$")
# What each sampled call carries, in order (the tuple the SQL sorts by its first element, a hash of the span id).
# Paired verdicts kept per (task, model pair) in one tune: the newest, enough to settle any margin worth routing on.
VERDICT_LIMIT = 200_000
_SAMPLE_FIELDS = ("output_tokens", "input_estimate", "censored", "max_tokens", "score", "start_ns")
# The latency split (tuner._dataset.LatencySplit) as (name, measured value, calls it is taken over): a count of the
# calls, and the median of the value over them.
_TIMED = "stream AND {done} AND isNotNull(ttft)"
_LATENCY_SPLIT = (
    ("streamed", "", "stream AND {done}"),
    ("streamed_ttft", "ttft", _TIMED),
    ("streamed_duration", "duration", "stream AND {done}"),
    ("plain", "duration", "NOT stream AND {done}"),
    ("cached", "ttft", _TIMED + " AND cache_read > 0"),
    ("uncached", "ttft", _TIMED + " AND cache_read = 0"),
)


class QueryError(Exception):
    """A query the database refused or could not finish; the message is one line, without credentials."""


class Runner(Protocol):
    """Runs one SELECT and returns its rows as dicts; raises QueryError with a one-line reason."""

    source: str  # how messages name the database (a path or a URL without credentials)

    def rows(self, sql: str) -> list[dict[str, Any]]: ...

    def stream(self, sql: str) -> Iterator[dict[str, Any]]:
        """The same rows one at a time, so a long result is never held whole as Python objects."""
        ...


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class _Attributes:
    """SQL expressions reading one span attribute as text ('' when absent) in either table variant."""

    json_column: bool

    def text(self, key: str) -> str:
        if not _KEY.match(key):
            raise ValueError(f"attribute name {key!r} cannot be spliced into SQL")
        return f"toString(SpanAttributes.`{key}`)" if self.json_column else f"SpanAttributes[{_literal(key)}]"

    def present(self, key: str) -> str:
        """Whether the span carries the attribute at all (text() reads an absent one and an empty one alike)."""
        self.text(key)  # validates the name
        if self.json_column:
            return f"isNotNull(SpanAttributes.`{key}`)"
        return f"mapContains(SpanAttributes, {_literal(key)})"

    def integer(self, key: str) -> str:
        """As the file path reads a count (tuner._limits_input._int): a whole number in [0, 2**63), else -1."""
        return f"greatest(toInt64OrDefault({self.text(key)}, toInt64(-1)), -1)"

    def number(self, key: str) -> str:
        """As the file path reads a float (tuner._limits_input._float): NaN when absent or unreadable."""
        return f"ifNull(toFloat64OrNull({self.text(key)}), nan)"

    def json(self, key: str) -> str:
        """The value as JSON text: arrays are stored that way in a Map; the JSON variant holds them typed."""
        return f"toJSONString(SpanAttributes.`{key}`)" if self.json_column else self.text(key)

    def first_present(self, keys: tuple[str, ...]) -> str:
        expression = self.text(keys[-1])
        for key in reversed(keys[:-1]):
            expression = f"if({self.text(key)} != '', {self.text(key)}, {expression})"
        return expression


def _window_sql(window: Window) -> str:
    conditions = ["1"]
    if window.since_ns is not None:
        conditions.append(f"Timestamp >= fromUnixTimestamp64Nano(toInt64({window.since_ns}))")
    if window.until_ns is not None:
        conditions.append(f"Timestamp < fromUnixTimestamp64Nano(toInt64({window.until_ns}))")
    return " AND ".join(conditions)


@dataclass(frozen=True)
class _Queries:
    table: str
    a: _Attributes
    window: Window

    def calls(self) -> str:
        # One row per call span with typed columns; everything else is computed from this.
        a = self.a
        task, model = a.text(sc.TASK), a.text(sc.GEN_AI_REQUEST_MODEL)
        error = a.text(sc.ERROR_TYPE)
        max_tokens = f"toInt64OrZero({a.text(sc.GEN_AI_REQUEST_MAX_TOKENS)})"
        input_tokens = f"toInt64OrZero({a.text(sc.GEN_AI_USAGE_INPUT_TOKENS)})"
        cancelled = (
            f"({a.text(sc.CANCELLED)} = 'true' OR {error} IN ({', '.join(map(_literal, CANCELLATION_ERRORS))}))"
        )
        requested_model = a.text(sc.POLICY_REQUESTED_MODEL)
        return f"""
        SELECT
            if({task} = '', {_literal(UNLABELLED)}, {task}) AS task,
            {model} AS model,
            toInt64(toUnixTimestamp64Nano(Timestamp)) AS start_ns,
            Duration / 1e9 AS duration,
            {cancelled} AS is_cancelled,
            {error} != '' AND NOT is_cancelled AS is_error,
            ifNull(JSONExtractString({a.json(sc.GEN_AI_RESPONSE_FINISH_REASONS)}, 1), '') AS finish,
            {input_tokens} AS input_tokens,
            toInt64OrDefault({a.text(sc.GEN_AI_USAGE_OUTPUT_TOKENS)}, toInt64(-1)) AS output_tokens,
            toInt64OrZero({a.text(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)}) AS cache_read,
            toInt64OrZero({a.first_present(CACHE_WRITE_ATTRIBUTES)}) AS cache_write,
            {max_tokens} AS max_tokens,
            toInt64OrDefault({a.text(sc.POLICY_REQUESTED_MAX_TOKENS)}, max_tokens) AS requested_max_tokens,
            if({requested_model} = '', model, {requested_model}) AS requested_model,
            toInt64OrDefault({a.text(sc.INPUT_TOKENS_ESTIMATE)}, input_tokens) AS input_estimate,
            {a.text(sc.PREFIX_FINGERPRINT)} AS prefix,
            toInt64OrZero({a.text(sc.PREFIX_TOKENS_ESTIMATE)}) AS prefix_tokens,
            toFloat64OrNull({a.text(sc.COST_USD)}) AS cost,
            toFloat64OrNull({a.text(sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)}) AS ttft,
            {a.text(sc.POLICY_EXPLORATION)} = 'true' AS exploration,
            {a.text(sc.GEN_AI_REQUEST_STREAM)} = 'true' AS stream,
            {a.text(sc.GEN_AI_RESPONSE_ID)} AS response_id,
            {a.text(sc.EVALUATION_ROLE)} AS role,
            SpanId AS span_id
        FROM {self.table}
        WHERE {a.text(sc.GEN_AI_OPERATION_NAME)} = {_literal(sc.CHAT_OPERATION)} AND {model} != ''
            AND {_window_sql(self.window)}
        """

    def feedback(self) -> str:
        a = self.a
        score = f"toFloat64OrNull({a.text(sc.GEN_AI_EVALUATION_SCORE_VALUE)})"
        return f"""
        SELECT {a.text(sc.GEN_AI_RESPONSE_ID)} AS response_id, avg({score}) AS score, count() AS scores
        FROM {self.table}
        WHERE (SpanName = {_literal(sc.FEEDBACK_SPAN)} OR {a.text(sc.GEN_AI_EVALUATION_SCORE_VALUE)} != '')
            AND SpanName != {_literal(sc.VERDICT_SPAN)}
            AND response_id != '' AND {score} IS NOT NULL AND {_window_sql(self.window)}
        GROUP BY response_id
        """

    def models(self) -> str:
        def mode(column: str, condition: str = "1") -> str:
            # The most common value, the smallest on ties (numpy's unique + argmax in the file path).
            counts = f"sumMapIf(map({column}, toUInt64(1)), {condition})"
            return f"arraySort(x -> (-x.2, x.1), arrayZip(mapKeys({counts}), mapValues({counts})))[1].1"

        completed = "NOT is_error AND NOT is_cancelled"
        app = "role = ''"
        # A model seen only in shadow calls describes itself from those (the file path's `own` rows).
        own = f"({app} OR countIf({app}) OVER (PARTITION BY task, model) = 0)"
        sample = f"({', '.join(('cityHash64(span_id)', *_SAMPLE_FIELDS))})"
        done = f"{completed} AND {app}"
        split = []
        for name, value, condition in _LATENCY_SPLIT:
            where = condition.format(done=done)
            split.append(f"countIf({where}) AS {name}")
            if value:
                split.append(f"quantileExactInclusiveIf(0.5)({value}, {where}) AS {name}_p50")
        latency = ",\n                ".join(split)
        # One array per field, so each leaves the server as a plain typed column (element 1 is the hash).
        unpacked = ", ".join(
            f"arrayMap(s -> s.{number}, samples) AS sample_{name}" for number, name in enumerate(_SAMPLE_FIELDS, 2)
        )
        return f"""
        WITH calls AS ({self.calls()}), fb AS ({self.feedback()})
        SELECT * EXCEPT (samples), {unpacked}
        FROM (
            SELECT task, model, countIf({app}) AS calls, countIf(exploration AND {app}) AS explore_calls,
                countIf(role = {_literal(sc.ROLE_SHADOW)}) AS shadow_calls,
                countIf(is_error AND {app}) AS errors, countIf(is_cancelled AND {app}) AS cancelled,
                countIf({completed} AND finish = 'max_tokens' AND {app}) AS truncated,
                countIf({completed} AND finish = 'refusal' AND {app}) AS refusals,
                sumIf(toInt64(round(ifNull(cost, 0) * {COST_UNITS_PER_USD})), {app}) AS cost_units,
                avg(input_tokens - cache_read - cache_write) AS mean_input,
                avg(greatest(output_tokens, 0)) AS mean_output,
                avg(cache_read) AS mean_cache_read, avg(cache_write) AS mean_cache_write,
                quantileExactInclusiveIf(0.95)(ttft, isNotNull(ttft)) AS ttft_p95, countIf(isNotNull(ttft)) AS ttft_n,
                quantileExactInclusive(0.95)(duration) AS duration_p95,
                {mode("max_tokens", "max_tokens > 0 AND own")} AS max_tokens_mode,
                {mode("requested_max_tokens", "requested_max_tokens > 0 AND own")} AS requested_max_tokens_mode,
                {mode("requested_model", "own")} AS requested_model_mode,
                countIf(isNotNull(score) AND {app}) AS scored, avgIf(score, isNotNull(score) AND {app}) AS q_mean,
                stddevSampIf(score, isNotNull(score) AND {app}) AS q_sd,
                sumIf(ifNull(scores, 0), {app}) AS matched_feedback,
                minIf(start_ns, {app}) AS first_ns, maxIf(start_ns, {app}) AS last_ns,
                {latency},
                groupArraySortedIf({SAMPLE_LIMIT})({sample}, {completed} AND output_tokens >= 0) AS samples
            FROM (
                SELECT *, finish = 'max_tokens' AS censored, {own} AS own
                FROM calls LEFT JOIN fb USING (response_id) WHERE role != {_literal(sc.ROLE_JUDGE)}
            )
            GROUP BY task, model
        )
        ORDER BY task, model
        SETTINGS join_use_nulls = 1
        """

    def prefixes(self) -> str:
        within = ", ".join(f"arrayCount(g -> g < {s * 10**9}, gaps) AS gaps_{ttl}" for ttl, s in TTL_SECONDS.items())
        return f"""
        SELECT task, prefix, calls, prefix_tokens, model_mode, length(gaps) AS gap_count, {within},
            cache_read_tokens, cache_write_tokens
        FROM (
            SELECT task, prefix, count() AS calls,
                toInt64(quantileExactInclusive(0.5)(prefix_tokens)) AS prefix_tokens, topK(1)(model) AS model_mode,
                arrayPopFront(arrayDifference(arraySort(groupArray(start_ns)))) AS gaps,
                sum(cache_read) AS cache_read_tokens, sum(cache_write) AS cache_write_tokens
            FROM ({self.calls()}) WHERE prefix != '' AND role = ''
            GROUP BY task, prefix
        )
        ORDER BY task, prefix
        """

    def evaluation(self) -> str:
        """Per task: what shadow and judge calls cost."""
        return f"""
        SELECT task, sum(toInt64(round(ifNull(cost, 0) * {COST_UNITS_PER_USD}))) AS spend_units
        FROM ({self.calls()}) WHERE role != '' GROUP BY task ORDER BY task
        """

    def verdicts(self) -> str:
        """Paired verdicts in time order per stream, each stream bounded (the newest are kept)."""
        a = self.a
        task = a.text(sc.TASK)
        return f"""
        SELECT * FROM (
            SELECT if({task} = '', {_literal(UNLABELLED)}, {task}) AS task,
                {a.text(sc.EVALUATION_INCUMBENT_MODEL)} AS incumbent,
                {a.text(sc.EVALUATION_CANDIDATE_MODEL)} AS candidate,
                toInt64(toUnixTimestamp64Nano(Timestamp)) AS start_ns,
                toFloat64OrNull({a.text(sc.GEN_AI_EVALUATION_SCORE_VALUE)}) AS value,
                {a.text(sc.GEN_AI_EVALUATION_SCORE_LABEL)} != {_literal(UNSETTLED)} AS settled
            FROM {self.table}
            WHERE SpanName = {_literal(sc.VERDICT_SPAN)} AND {_window_sql(self.window)}
                AND incumbent != '' AND candidate != '' AND value BETWEEN -1 AND 1
            ORDER BY task, incumbent, candidate, start_ns DESC, value
            LIMIT {VERDICT_LIMIT} BY task, incumbent, candidate
        )
        ORDER BY task, incumbent, candidate, start_ns, value
        """

    def limit_calls(self, newest: int) -> str:
        """The rate-limit rows (tuner._limits_input.limit_rows) of the `newest` latest-starting calls of the window,
        oldest first, typed and with missing or unreadable values as the file path maps them."""
        a = self.a
        model, error = a.text(sc.GEN_AI_REQUEST_MODEL), a.text(sc.ERROR_TYPE)
        codes = "".join(f"{error} = {_literal(kind)}, {code}, " for kind, code in ERROR_CODES.items())
        total_in, wait = a.integer(sc.GEN_AI_USAGE_INPUT_TOKENS), a.number(sc.ADMISSION_WAIT)
        cached = a.integer(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)
        # The setting: chdb answers in JSON, which would write NaN and infinities as null.
        return f"""
        SELECT * EXCEPT span_id FROM (
            SELECT {model} AS model,
                toInt64(toUnixTimestamp64Nano(Timestamp)) AS start_ns,
                start_ns + toInt64(Duration) AS end_ns,
                multiIf(NOT {a.present(sc.ERROR_TYPE)}, {OK}, {codes}{OTHER_ERROR}) AS error,
                {a.integer(sc.RETRIES)} AS retries,
                {a.integer(sc.GEN_AI_REQUEST_MAX_TOKENS)} AS max_tokens,
                {a.integer(sc.GEN_AI_USAGE_OUTPUT_TOKENS)} AS output,
                if({total_in} >= 0, {total_in} - greatest({cached}, 0), -1) AS input_uncached,
                if({a.present(sc.ADMISSION_WAIT)}, if({wait} < 0, 0, {wait}), 0) AS wait,
                {a.number(sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)} AS ttft,
                {a.text(sc.GEN_AI_REQUEST_STREAM)} = 'true' AS stream,
                [{", ".join(map(a.integer, LIMITS))}] AS limit,
                [{", ".join(map(a.integer, REMAINING))}] AS remaining,
                SpanId AS span_id
            FROM {self.table}
            WHERE {a.text(sc.GEN_AI_OPERATION_NAME)} = {_literal(sc.CHAT_OPERATION)} AND model != ''
                AND start_ns > 0 AND {_window_sql(self.window)}
            ORDER BY start_ns DESC, span_id DESC
            LIMIT {int(newest)}
        )
        ORDER BY start_ns, span_id
        SETTINGS output_format_json_quote_denormals = 1
        """

    def totals(self) -> str:
        return f"""
        SELECT (SELECT count() FROM {self.table} WHERE {_window_sql(self.window)}) AS spans,
            (SELECT sum(scores) FROM ({self.feedback()})) AS feedback
        """


def _column_type(run: Runner, table: str, column: str) -> str:
    described = {row["name"]: row["type"] for row in run.rows(f"DESCRIBE TABLE {table}")}
    if column not in described:
        raise TraceInputError(f"{run.source}: table {table} has no {column} column: not the clickhouseexporter schema")
    return str(described[column])


def queries_for(run: Runner, table: str, window: Window) -> _Queries:
    """The SQL for this table: its SpanAttributes variant is read from the schema, not guessed."""
    kind = _column_type(run, table, "SpanAttributes")
    if kind.startswith("Map("):
        return _Queries(table, _Attributes(json_column=False), window)
    if kind.startswith("JSON"):
        return _Queries(table, _Attributes(json_column=True), window)
    raise TraceInputError(f"{run.source}: {table}.SpanAttributes is {kind}; expected Map(String, String) or JSON")


def _opt_float(value: Any, present: bool = True) -> float | None:
    return float(value) if present and value is not None else None


def _array(values: Any, dtype: type, convert: Callable[[Any], Any] | None = None) -> np.ndarray:
    if convert is not None:
        values = [convert(v) for v in values]
    return np.asarray(values, dtype=dtype)


def _model_stats(row: dict[str, Any]) -> ModelStats:
    scored = int(row["scored"])
    quality = Quality(scored, float(row["q_mean"]), float(row["q_sd"] or 0.0)) if scored else None
    return ModelStats(
        task=row["task"],
        model=row["model"],
        calls=int(row["calls"]),
        explore_calls=int(row["explore_calls"]),
        errors=int(row["errors"]),
        truncated=int(row["truncated"]),
        refusals=int(row["refusals"]),
        cancelled=int(row["cancelled"]),
        cost_total=int(row["cost_units"]) / COST_UNITS_PER_USD,
        mean_input=float(row["mean_input"]),
        mean_output=float(row["mean_output"]),
        mean_cache_read=float(row["mean_cache_read"]),
        mean_cache_write=float(row["mean_cache_write"]),
        ttft_p95=_opt_float(row["ttft_p95"], int(row["ttft_n"]) > 0),
        duration_p95=_opt_float(row["duration_p95"]),
        max_tokens=int(row["max_tokens_mode"]) or None,
        requested_max_tokens=int(row["requested_max_tokens_mode"]) or None,
        requested_model=str(row["requested_model_mode"]),
        quality=quality,
        lengths=_array(row["sample_output_tokens"], np.int64),
        sizes=_array(row["sample_input_estimate"], np.int64),
        censored=_array(row["sample_censored"], bool),
        caps=_array(row["sample_max_tokens"], np.int64),
        scores=_array(row["sample_score"], np.float64, lambda s: np.nan if s is None else s),
        times=_array(row["sample_start_ns"], np.int64),
        shadow_calls=int(row["shadow_calls"]),
        latency=_latency_split(row),
    )


def _latency_split(row: dict[str, Any]) -> LatencySplit:
    def median(name: str) -> float | None:
        return _opt_float(row[f"{name}_p50"], int(row[name]) > 0)

    return LatencySplit(
        streamed=int(row["streamed"]),
        streamed_ttft_p50=median("streamed_ttft"),
        streamed_duration_p50=median("streamed_duration"),
        plain=int(row["plain"]),
        plain_duration_p50=median("plain"),
        cached=int(row["cached"]),
        cached_ttft_p50=median("cached"),
        uncached=int(row["uncached"]),
        uncached_ttft_p50=median("uncached"),
    )


def _prefix_stats(row: dict[str, Any]) -> PrefixStats:
    return PrefixStats(
        task=row["task"],
        fingerprint=row["prefix"],
        model=row["model_mode"][0],
        calls=int(row["calls"]),
        prefix_tokens=int(row["prefix_tokens"]),
        gaps=int(row["gap_count"]),
        gaps_within={ttl: int(row[f"gaps_{ttl}"]) for ttl in TTL_SECONDS},
        cache_read_tokens=int(row["cache_read_tokens"]),
        cache_write_tokens=int(row["cache_write_tokens"]),
    )


@contextmanager
def _reading(run: Runner, table: str) -> Iterator[None]:
    if not _TABLE_NAME.match(table):
        raise TraceInputError(f"{run.source}: bad table name {table!r}")
    try:
        yield
    except QueryError as err:
        raise TraceInputError(f"{run.source} table {table}: {err}") from None


def load_clickhouse(run: Runner, table: str = "otel_traces", window: Window = ALL_TIME) -> Dataset:
    with _reading(run, table):
        queries = queries_for(run, table, window)
        model_rows = run.rows(queries.models())
        prefix_rows = run.rows(queries.prefixes())
        totals = run.rows(queries.totals())[0]
        verdict_rows = run.rows(queries.verdicts())
        spend_rows = run.rows(queries.evaluation())
    models = [_model_stats(row) for row in model_rows]
    calls = sum(m.calls for m in models)
    feedback = int(totals["feedback"] or 0)
    return Dataset(
        models=models,
        prefixes=[_prefix_stats(row) for row in prefix_rows],
        spans=int(totals["spans"]),
        calls=calls,
        feedback=feedback,
        feedback_unmatched=feedback - sum(int(row["matched_feedback"]) for row in model_rows),
        start_ns=min(int(row["first_ns"]) for row in model_rows if int(row["calls"])) if calls else None,
        end_ns=max(int(row["last_ns"]) for row in model_rows if int(row["calls"])) if calls else None,
        verdicts=verdict_streams([
            Verdict(row["task"], row["incumbent"], row["candidate"], int(row["start_ns"]), float(row["value"]),
                    bool(row["settled"]))
            for row in verdict_rows
        ]),
        evaluation_cost={row["task"]: int(row["spend_units"]) / COST_UNITS_PER_USD for row in spend_rows},
    )


def _limit_row(row: dict[str, Any]) -> dict[str, Any]:
    # chdb answers in JSON, which may quote 64-bit integers and writes NaN and infinities as strings.
    for name in INT_FIELDS:
        row[name] = int(row[name])
    for name in FLOAT_FIELDS:
        row[name] = float(row[name])
    row["stream"] = bool(row["stream"])
    row["limit"] = [int(v) for v in row["limit"]]
    row["remaining"] = [int(v) for v in row["remaining"]]
    return row


def load_limit_rows(run: Runner, table: str, window: Window, newest: int) -> LimitRows:
    """The rate-limit rows of the `newest` most recent calls of the window: limits are about recent behaviour, and
    the rows that leave the server stay bounded however many calls the window holds."""
    with _reading(run, table):
        return limit_rows(map(_limit_row, run.stream(queries_for(run, table, window).limit_calls(newest))))
