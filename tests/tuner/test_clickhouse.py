"""ClickHouse `otel_traces` via chdb: the SQL-pushed-down dataset equals the one built from files."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from tuner import synthetic as syn
from tuner._ingest import load_dataset
from tuner._issues import TraceInputError
from tuner._tune import TuneOptions, build_policy, decide_all

pytest.importorskip("chdb", reason="chdb (in-process ClickHouse) is not installed")

from tuner._clickhouse import ChdbRunner, load_clickhouse

# The Collector clickhouseexporter's traces table (contrib exporter/clickhouseexporter, internal/sqltemplates).
DDL = """
CREATE TABLE IF NOT EXISTS otel_traces (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
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
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (Timestamp DateTime64(9), Name LowCardinality(String), Attributes Map(LowCardinality(String), String))
        CODEC(ZSTD(1)),
    Links Nested (TraceId String, SpanId String, TraceState String, Attributes Map(LowCardinality(String), String))
        CODEC(ZSTD(1))
) ENGINE = MergeTree()
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))
"""

T0 = 1_763_900_000_000_000_000


def _spans(seed: int = 3) -> list[syn.Span]:
    rng = random.Random(seed)
    spans = []
    t = T0
    for i in range(600):
        t += int(rng.expovariate(1 / 90) * 1e9)
        model = "claude-sonnet-4-6" if i % 3 else "claude-haiku-4-5"
        task = "classify" if i % 2 else "summarize"
        rid = f"msg_{i}"
        spans.append(
            syn.call(
                start_ns=t,
                model=model,
                task=task,
                output_tokens=int(rng.lognormvariate(5, 0.6)),
                max_tokens=600,
                input_tokens=rng.randint(3000, 9000),
                response_id=rid,
                prefix=f"fp-{task}-{i % 2 + (i % 5 == 0)}",
                prefix_tokens=4500,
                ttft=rng.uniform(0.2, 1.5),
                error="overloaded_error" if i % 97 == 0 else None,
                exploration=i % 7 == 0,
                requested_max_tokens=4096 if i % 5 else None,
                requested_model="claude-sonnet-4-6" if i % 6 == 0 else None,
            )
        )
        if i % 4:
            spans.append(syn.feedback(start_ns=t + 1000, response_id=rid, score=float(rng.random() < 0.85)))
    spans.append(syn.feedback(start_ns=T0, response_id="msg_nowhere", score=1.0))
    return spans


def _sql_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _insert(runner: ChdbRunner, spans: list[syn.Span]) -> None:
    values = []
    for number, span in enumerate(spans):
        attrs = syn.clickhouse_attributes(span)
        amap = "map(" + ", ".join(f"{_sql_literal(k)}, {_sql_literal(v)}" for k, v in attrs.items()) + ")"
        values.append(
            f"(fromUnixTimestamp64Nano(toInt64({span.start_ns})), '{number:032x}', '{number:016x}', '', '', "
            f"{_sql_literal(span.name)}, 'Client', 'svc', map(), 'otel_claude', '0.1.0', {amap}, "
            f"{span.end_ns - span.start_ns}, 'Unset', '', [], [], [], [], [], [], [])"
        )
    for start in range(0, len(values), 200):
        runner("INSERT INTO otel_traces VALUES " + ", ".join(values[start : start + 200]))


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[ChdbRunner, list[syn.Span], Path]:
    # chdb serves one data directory per process: every test of this module shares it.
    path = tmp_path_factory.mktemp("chdb")
    runner = ChdbRunner(str(path))
    runner(DDL)
    spans = _spans()
    _insert(runner, spans)
    yield runner, spans, path
    runner.close()


def test_sql_dataset_matches_the_file_dataset(loaded: tuple, tmp_path: Path) -> None:
    runner, spans, _ = loaded
    from_sql = load_clickhouse(runner)
    from_file, issues = load_dataset([str(syn.write_otlp(tmp_path / "t.json", spans))])
    assert issues.total == 0
    for name in ("spans", "calls", "feedback", "feedback_unmatched", "start_ns", "end_ns"):
        assert getattr(from_sql, name) == getattr(from_file, name), name
    # Feedback on the 5 failed calls (no response id: i = 97, 194, 291, 485, 582) and on msg_nowhere.
    assert from_sql.feedback_unmatched == 6
    assert [(m.task, m.model) for m in from_sql.models] == [(m.task, m.model) for m in from_file.models]
    assert any(m.requested_model != m.model for m in from_sql.models)  # calls a policy routed are in the data
    for sql, file in zip(from_sql.models, from_file.models, strict=True):
        for name in ("calls", "explore_calls", "errors", "truncated", "refusals", "max_tokens", "requested_max_tokens",
                     "requested_model"):
            assert getattr(sql, name) == getattr(file, name), (sql.task, sql.model, name)
        for name in ("cost_total", "mean_input", "mean_output", "ttft_p95", "duration_p95"):
            assert getattr(sql, name) == pytest.approx(getattr(file, name), rel=1e-6), (sql.task, sql.model, name)
        assert sql.quality is not None and file.quality is not None
        assert sql.quality.n == file.quality.n
        assert sql.quality.mean == pytest.approx(file.quality.mean) and sql.quality.sd == pytest.approx(file.quality.sd)
        # Samples are all rows here (below the bound), in a different order.
        assert sorted(sql.lengths.tolist()) == sorted(file.lengths.tolist())
        assert np.count_nonzero(sql.censored) == np.count_nonzero(file.censored)
        assert np.nansum(sql.scores) == pytest.approx(np.nansum(file.scores))
        assert np.count_nonzero(~np.isnan(sql.scores)) == np.count_nonzero(~np.isnan(file.scores))
    assert from_sql.prefixes == from_file.prefixes


def test_sql_dataset_gives_the_same_policy(loaded: tuple, tmp_path: Path) -> None:
    runner, spans, _ = loaded
    options = TuneOptions()
    from_sql = load_clickhouse(runner)
    from_file, _ = load_dataset([str(syn.write_otlp(tmp_path / "t.json", spans))])
    sql_policy = build_policy(from_sql, decide_all(from_sql, options), options)
    file_policy = build_policy(from_file, decide_all(from_file, options), options)
    # classify's callers use two models with different lengths: a rule per model, then the task's own.
    assert list(dict.fromkeys(r.task for r in sql_policy.rules)) == ["classify", "summarize"]
    assert sql_policy.version == file_policy.version


def test_bad_table_and_missing_table_fail_clearly(loaded: tuple) -> None:
    runner, _, _ = loaded
    with pytest.raises(TraceInputError, match="bad table name"):
        load_clickhouse(runner, "otel_traces; DROP TABLE x")
    with pytest.raises(TraceInputError, match="clickhouse table nope: query failed"):
        load_clickhouse(runner, "nope")


def test_cli_reads_a_chdb_table(loaded: tuple, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from otel_claude._cli import main as otel_claude
    from otel_claude.policy import load_policy_text

    _, _, path = loaded
    assert otel_claude(["tune", f"chdb:{path}", "-o", str(tmp_path / "p.yaml"), "--no-progress"]) == 0
    policy = load_policy_text((tmp_path / "p.yaml").read_text(), "p.yaml")
    assert list(dict.fromkeys(r.task for r in policy.rules)) == ["classify", "summarize"]
    assert "600 calls read" in capsys.readouterr().out
    assert otel_claude(["tune", f"chdb:{path}", str(tmp_path / "p.yaml")]) == 2
    assert "cannot be combined" in capsys.readouterr().err
