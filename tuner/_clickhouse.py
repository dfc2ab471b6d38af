"""ClickHouse `otel_traces` (the Collector's clickhouseexporter schema): the tuner's dataset computed in SQL.

Grouping, counts, means, quantiles, the feedback join and the reuse gaps run inside ClickHouse; only one row per
(task, model) and (task, prefix) plus a bounded hash-ordered sample of output lengths per (task, model) leave it.
That is what lets the tuner serve a fleet whose traces no longer fit one machine. Map values are strings there,
so every attribute is cast; arrays (finish reasons) are JSON text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from tuner._dataset import SAMPLE_LIMIT, TTL_SECONDS, Dataset, ModelStats, PrefixStats, Quality
from tuner._issues import TraceInputError
from tuner._records import UNLABELLED

Runner = Callable[[str], list[dict[str, Any]]]
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


class ChdbRunner:
    """Runs SQL in an in-process ClickHouse (chdb) over a data directory."""

    def __init__(self, path: str) -> None:
        try:
            from chdb import session
        except ImportError:
            raise TraceInputError("chdb: inputs need 'chdb' (pip install 'otel-claude[clickhouse]')") from None
        self._session = session.Session(path)

    def __call__(self, sql: str) -> list[dict[str, Any]]:
        result = self._session.query(sql, "JSONEachRow")
        return [json.loads(line) for line in result.bytes().splitlines() if line.strip()]

    def close(self) -> None:
        self._session.close()


def _attr(name: str) -> str:
    return f"SpanAttributes['{name}']"


def _calls_sql(table: str) -> str:
    # One row per call span with typed columns; everything else is computed from this.
    return f"""
    SELECT
        if({_attr("otel_claude.task")} = '', '{UNLABELLED}', {_attr("otel_claude.task")}) AS task,
        {_attr("gen_ai.request.model")} AS model,
        toInt64(toUnixTimestamp64Nano(Timestamp)) AS start_ns,
        Duration / 1e9 AS duration,
        {_attr("error.type")} != '' AS is_error,
        JSONExtractString({_attr("gen_ai.response.finish_reasons")}, 1) AS finish,
        toInt64OrZero({_attr("gen_ai.usage.input_tokens")}) AS input_tokens,
        toInt64OrDefault({_attr("gen_ai.usage.output_tokens")}, toInt64(-1)) AS output_tokens,
        toInt64OrZero({_attr("gen_ai.usage.cache_read.input_tokens")}) AS cache_read,
        toInt64OrZero({_attr("gen_ai.usage.cache_creation.input_tokens")}) AS cache_write,
        toInt64OrZero({_attr("gen_ai.request.max_tokens")}) AS max_tokens,
        toInt64OrDefault({_attr("otel_claude.policy.requested_max_tokens")}, max_tokens) AS requested_max_tokens,
        if({_attr("otel_claude.policy.requested_model")} = '', model,
           {_attr("otel_claude.policy.requested_model")}) AS requested_model,
        toInt64OrDefault({_attr("otel_claude.input.tokens_estimate")}, input_tokens) AS input_estimate,
        {_attr("otel_claude.prefix.fingerprint")} AS prefix,
        toInt64OrZero({_attr("otel_claude.prefix.tokens_estimate")}) AS prefix_tokens,
        toFloat64OrNull({_attr("otel_claude.cost_usd")}) AS cost,
        toFloat64OrNull({_attr("gen_ai.response.time_to_first_chunk")}) AS ttft,
        {_attr("otel_claude.policy.exploration")} = 'true' AS exploration,
        {_attr("gen_ai.response.id")} AS response_id,
        SpanId AS span_id
    FROM {table}
    WHERE {_attr("gen_ai.operation.name")} = 'chat' AND {_attr("gen_ai.request.model")} != ''
    """


def _feedback_sql(table: str) -> str:
    return f"""
    SELECT {_attr("gen_ai.response.id")} AS response_id,
           avg(toFloat64OrNull({_attr("gen_ai.evaluation.score.value")})) AS score,
           count() AS scores
    FROM {table}
    WHERE (SpanName = 'evaluation feedback' OR mapContains(SpanAttributes, 'gen_ai.evaluation.score.value'))
      AND {_attr("gen_ai.response.id")} != ''
    GROUP BY response_id
    """


def _models_sql(table: str) -> str:
    return f"""
    WITH calls AS ({_calls_sql(table)}), fb AS ({_feedback_sql(table)})
    SELECT task, model, count() AS calls, countIf(exploration) AS explore_calls, countIf(is_error) AS errors,
        countIf(NOT is_error AND finish = 'max_tokens') AS truncated,
        countIf(NOT is_error AND finish = 'refusal') AS refusals,
        sum(ifNull(cost, 0)) AS cost_total,
        avg(input_tokens - cache_read - cache_write) AS mean_input, avg(greatest(output_tokens, 0)) AS mean_output,
        avg(cache_read) AS mean_cache_read, avg(cache_write) AS mean_cache_write,
        quantileExactInclusiveIf(0.95)(ttft, isNotNull(ttft)) AS ttft_p95, countIf(isNotNull(ttft)) AS ttft_n,
        quantileExactInclusive(0.95)(duration) AS duration_p95,
        arraySort(x -> (-x.2, x.1), arrayZip(mapKeys(sumMapIf(map(max_tokens, toUInt64(1)), max_tokens > 0)),
            mapValues(sumMapIf(map(max_tokens, toUInt64(1)), max_tokens > 0))))[1].1 AS max_tokens_mode,
        arraySort(x -> (-x.2, x.1), arrayZip(
            mapKeys(sumMapIf(map(requested_max_tokens, toUInt64(1)), requested_max_tokens > 0)),
            mapValues(sumMapIf(map(requested_max_tokens, toUInt64(1)), requested_max_tokens > 0))))[1].1
            AS requested_max_tokens_mode,
        arraySort(x -> (-x.2, x.1), arrayZip(mapKeys(sumMap(map(requested_model, toUInt64(1)))),
            mapValues(sumMap(map(requested_model, toUInt64(1))))))[1].1 AS requested_model_mode,
        countIf(isNotNull(score)) AS scored, avgIf(score, isNotNull(score)) AS q_mean,
        stddevSampIf(score, isNotNull(score)) AS q_sd
    FROM calls LEFT JOIN fb USING (response_id)
    GROUP BY task, model ORDER BY task, model
    SETTINGS join_use_nulls = 1
    """


def _samples_sql(table: str) -> str:
    # Hash order is a deterministic pseudo-random sample, which keeps the conformal exchangeability assumption.
    return f"""
    WITH calls AS ({_calls_sql(table)}), fb AS ({_feedback_sql(table)})
    SELECT task, model, output_tokens, input_estimate, finish = 'max_tokens' AS censored, max_tokens, score, start_ns
    FROM calls LEFT JOIN fb USING (response_id) WHERE NOT is_error AND output_tokens >= 0
    ORDER BY task, model, cityHash64(span_id)
    LIMIT {SAMPLE_LIMIT} BY task, model
    SETTINGS join_use_nulls = 1
    """


def _prefixes_sql(table: str) -> str:
    within = ", ".join(f"countIf(rn > 1 AND gap < {s * 10**9}) AS gaps_{ttl}" for ttl, s in TTL_SECONDS.items())
    return f"""
    WITH calls AS ({_calls_sql(table)})
    SELECT task, prefix, count() AS calls, toInt64(quantileExactInclusive(0.5)(prefix_tokens)) AS prefix_tokens,
        topK(1)(model) AS model_mode, countIf(rn > 1) AS gaps, {within},
        sum(cache_read) AS cache_read_tokens, sum(cache_write) AS cache_write_tokens
    FROM (
        SELECT *,
            start_ns - lagInFrame(start_ns) OVER w AS gap,
            row_number() OVER w AS rn
        FROM calls WHERE prefix != ''
        WINDOW w AS (PARTITION BY task, prefix ORDER BY start_ns ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
    )
    GROUP BY task, prefix ORDER BY task, prefix
    """


def _totals_sql(table: str) -> str:
    return f"""
    WITH calls AS ({_calls_sql(table)}), fb AS ({_feedback_sql(table)})
    SELECT (SELECT count() FROM {table}) AS spans, (SELECT count() FROM calls) AS calls,
        (SELECT sum(scores) FROM fb) AS feedback,
        (SELECT sum(scores) FROM fb WHERE response_id NOT IN (SELECT response_id FROM calls)) AS unmatched,
        (SELECT min(start_ns) FROM calls) AS start_ns, (SELECT max(start_ns) FROM calls) AS end_ns
    """


def _opt_float(value: Any, present: bool = True) -> float | None:
    return float(value) if present and value is not None else None


def load_clickhouse(run: Runner, table: str = "otel_traces") -> Dataset:
    if not _TABLE_NAME.match(table):
        raise TraceInputError(f"clickhouse: bad table name {table!r}")
    try:
        totals = run(_totals_sql(table))[0]
        model_rows = run(_models_sql(table))
        sample_rows = run(_samples_sql(table))
        prefix_rows = run(_prefixes_sql(table))
    except Exception as err:
        if isinstance(err, TraceInputError):
            raise
        raise TraceInputError(f"clickhouse table {table}: query failed: {err}") from None
    samples: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for row in sample_rows:
        key = (row["task"], row["model"])
        score = float("nan") if row["score"] is None else float(row["score"])
        sample = (
            int(row["output_tokens"]),
            int(row["input_estimate"]),
            bool(row["censored"]),
            int(row["max_tokens"]),
            score,
            int(row["start_ns"]),
        )
        samples.setdefault(key, []).append(sample)
    models = []
    for row in model_rows:
        rows = sorted(samples.get((row["task"], row["model"]), []), key=lambda r: r[5])  # time order, as files
        sample = np.array([r[:5] for r in rows], dtype=np.float64).reshape(-1, 5)
        times = np.array([r[5] for r in rows], dtype=np.int64)
        scored = int(row["scored"])
        quality = Quality(scored, float(row["q_mean"]), float(row["q_sd"] or 0.0)) if scored else None
        models.append(
            ModelStats(
                task=row["task"],
                model=row["model"],
                calls=int(row["calls"]),
                explore_calls=int(row["explore_calls"]),
                errors=int(row["errors"]),
                truncated=int(row["truncated"]),
                refusals=int(row["refusals"]),
                cost_total=float(row["cost_total"]),
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
                lengths=sample[:, 0].astype(np.int64),
                sizes=sample[:, 1].astype(np.int64),
                censored=sample[:, 2].astype(bool),
                caps=sample[:, 3].astype(np.int64),
                scores=sample[:, 4],
                times=times,
            )
        )
    prefixes = [
        PrefixStats(
            task=row["task"],
            fingerprint=row["prefix"],
            model=row["model_mode"][0],
            calls=int(row["calls"]),
            prefix_tokens=int(row["prefix_tokens"]),
            gaps=int(row["gaps"]),
            gaps_within={ttl: int(row[f"gaps_{ttl}"]) for ttl in TTL_SECONDS},
            cache_read_tokens=int(row["cache_read_tokens"]),
            cache_write_tokens=int(row["cache_write_tokens"]),
        )
        for row in prefix_rows
    ]
    calls = int(totals["calls"])
    return Dataset(
        models=models,
        prefixes=prefixes,
        spans=int(totals["spans"]),
        calls=calls,
        feedback=int(totals["feedback"] or 0),
        feedback_unmatched=int(totals["unmatched"] or 0),
        start_ns=int(totals["start_ns"]) if calls else None,
        end_ns=int(totals["end_ns"]) if calls else None,
    )
