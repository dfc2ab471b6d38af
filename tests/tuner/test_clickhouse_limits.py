"""Rate-limit decisions from ClickHouse: the rows the query returns (both table variants, in chdb and through a
server over HTTP) equal the ones the file path reads from the same spans, so the decisions and the policy's
`limits` do too; only the most recent calls of the window leave the server."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from otel_claude import semconv as sc
from otel_claude.policy import load_policy_text
from tuner import synthetic as syn
from tuner._issues import TraceInputError
from tuner._limits import decide_limits
from tuner._limits_input import (
    ADMISSION_TIMEOUT,
    OK,
    OTHER_ERROR,
    OVERLOADED,
    RATE_LIMITED,
    LimitRows,
    read_limit_rows,
)
from tuner._window import Window

pytest.importorskip("chdb", reason="chdb (in-process ClickHouse) is not installed")
pytest.importorskip("clickhouse_connect", reason="clickhouse-connect is not installed")

from clickhouse_tables import JSON_TABLE, MAP_TABLE, Loaded, loaded_tables
from span_sets import T0

from tuner._clickhouse import load_limit_rows
from tuner._clickhouse_source import HttpRunner, Limits, parse_server_url

DAY = 86_400 * 10**9
USER, PASSWORD = "tuner", "s3cret-Pa55"
SONNET, HAIKU = "claude-sonnet-4-6", "claude-haiku-4-5"
ACCOUNT = (600, 100_000, 20_000)  # requests, input and output tokens per minute
EVERYTHING = 10**6


def limit_spans(calls: int = 1500, seed: int = 11) -> list[syn.Span]:
    """Two models over about three days: 429s, 529s, admission timeouts, other and empty error types, retries,
    admission waits, rate-limit headers, streamed and plain calls, and values missing, negative, of the wrong type
    or unreadable; besides them spans the rows must leave out. Start times strictly increase."""
    rng = random.Random(seed)
    spans = []
    t = T0
    for i in range(calls):
        t += int(rng.expovariate(1 / 170) * 1e6) * 1000 + 1000
        error = ("rate_limit_error" if i % 13 == 0 else "overloaded_error" if i % 29 == 0 else
                 sc.ADMISSION_TIMEOUT_ERROR if i % 41 == 0 else "api_error" if i % 37 == 0 else None)
        span = syn.call(start_ns=t, model=HAIKU if i % 3 == 0 else SONNET, task="t", error=error,
                        output_tokens=int(rng.lognormvariate(5, 0.7)), max_tokens=1024,
                        input_tokens=rng.randint(500, 6000), cache_read=rng.choice((0, 0, 400)),
                        ttft=round(rng.uniform(0.1, 1.2), 3) if i % 3 else None,
                        duration_s=round(rng.uniform(0.5, 6.0), 3))
        attrs = span.attributes
        attrs[sc.RETRIES] = (i % 3, i % 3, "2", -1, True)[i % 5]
        if i % 11 == 0:
            del attrs[sc.RETRIES]
        if i % 43 == 0:
            attrs[sc.ERROR_TYPE] = ""  # present but empty: an error of no known kind
        if i % 7 == 0:
            attrs[sc.ADMISSION_WAIT] = round(rng.uniform(0, 2), 4)
        elif i % 31 == 0:
            attrs[sc.ADMISSION_WAIT] = -0.5  # read as no wait
        elif i % 47 == 0:
            attrs[sc.ADMISSION_WAIT] = "n/a"  # unreadable: NaN
        if i % 4:
            for kind, (limit, remaining) in enumerate(sc.RATELIMIT_READINGS):
                attrs[limit] = ACCOUNT[kind]
                attrs[remaining] = rng.randint(0, ACCOUNT[kind])
            if i % 19 == 0:
                attrs[sc.RATELIMIT_READINGS[0][0]] = -5
            if i % 23 == 0:
                attrs[sc.RATELIMIT_READINGS[2][1]] = "n/a"
        if i % 53 == 0:
            del attrs[sc.GEN_AI_REQUEST_MAX_TOKENS]
        if i % 59 == 0:
            attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = "lots"
        if i % 61 == 0 and i % 3:
            attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = "inf"
        spans.append(span)
        if i % 5 == 0:
            spans.append(syn.feedback(start_ns=t + 1, response_id=f"msg_{t:x}", score=1.0))
        if i % 97 == 0:  # a chat span with no model, and one of another operation: no rows
            spans.append(syn.Span("chat", t + 2, t + 10**6, {sc.GEN_AI_OPERATION_NAME: sc.CHAT_OPERATION,
                                                             sc.GEN_AI_REQUEST_MODEL: ""}))
            spans.append(syn.Span("embeddings", t + 3, t + 10**6, {sc.GEN_AI_OPERATION_NAME: "embeddings",
                                                                   sc.GEN_AI_REQUEST_MODEL: SONNET}))
    return spans


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    file = tmp_path_factory.mktemp("file-limits") / "t.json"
    with loaded_tables(tmp_path_factory.mktemp("chdb-limits"), file, limit_spans(), USER, PASSWORD) as tables:
        yield tables


def _http(loaded: Loaded) -> HttpRunner:
    return HttpRunner(parse_server_url(loaded.server.url(user=USER)), PASSWORD, Limits())


def _assert_same_rows(got: LimitRows, expected: LimitRows) -> None:
    assert got.models == expected.models
    for field in fields(LimitRows):
        if field.name != "models":
            value, want = getattr(got, field.name), getattr(expected, field.name)
            assert value.dtype == want.dtype, field.name
            np.testing.assert_array_equal(value, want, err_msg=field.name)  # NaNs in the same places are equal


def _by_name(rows: LimitRows, keep: np.ndarray) -> dict[str, np.ndarray]:
    """The rows at `keep`, with model names in place of indexes (so subsets of different readers compare)."""
    named = {f.name: getattr(rows, f.name)[keep] for f in fields(LimitRows) if f.name not in ("models", "model")}
    return {"model": np.array(rows.models)[rows.model][keep], **named}


def _assert_same_named(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert got.keys() == expected.keys()
    for name, value in got.items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


@pytest.mark.parametrize("table", [MAP_TABLE, JSON_TABLE])
def test_rows_and_decisions_from_chdb_equal_the_file_paths(loaded: Loaded, table: str) -> None:
    from_file = read_limit_rows([str(loaded.file)])
    from_sql = load_limit_rows(loaded.runner, table, Window(), EVERYTHING)
    _assert_same_rows(from_sql, from_file)
    # The span set exercises every mapping: each error class, waits read as none and as unreadable, retries and
    # headers unknown, an infinite time to first token.
    assert len(from_sql) == 1500 and set(from_sql.error.tolist()) == {
        OK, RATE_LIMITED, OVERLOADED, OTHER_ERROR, ADMISSION_TIMEOUT}
    assert (from_sql.wait > 0).any() and np.isnan(from_sql.wait).any() and (from_sql.wait == 0).any()
    assert (from_sql.retries == -1).any() and (from_sql.retries == 2).any()
    assert (from_sql.limit == -1).any() and (from_sql.limit == ACCOUNT[0]).any() and (from_sql.remaining == -1).any()
    assert np.isinf(from_sql.ttft).any() and np.isnan(from_sql.ttft).any() and from_sql.stream.any()
    assert (from_sql.output == -1).any() and (from_sql.max_tokens == -1).any()
    decisions = decide_limits(from_sql)
    assert decisions == decide_limits(from_file)
    assert {d.model for d in decisions if d.limit is not None} == {SONNET, HAIKU}


@pytest.mark.parametrize("table", [MAP_TABLE, JSON_TABLE])
def test_rows_from_a_server_over_http_equal_the_file_paths(loaded: Loaded, table: str) -> None:
    runner = _http(loaded)
    before = len(loaded.server.stats.queries)
    try:
        from_server = load_limit_rows(runner, table, Window(), EVERYTHING)
    finally:
        runner.close()
    _assert_same_rows(from_server, read_limit_rows([str(loaded.file)]))
    # The query carried the tune's bounds on the server's time, memory and result size.
    (settings,) = [s for q, s in zip(loaded.server.stats.queries[before:], loaded.server.stats.settings[before:],
                                     strict=True) if "LIMIT" in q]
    assert {"max_execution_time", "max_memory_usage", "max_result_rows", "result_overflow_mode"} <= set(settings)


def _tune(args: list[str], capsys: pytest.CaptureFixture) -> tuple[tuple, list[str]]:
    """The policy's limits and the printed rate-limit lines of a tune. (Only these: the main pass of the file path
    skips the spans with unreadable usage that ClickHouse reads as zero, so the rest of the policy differs here.)"""
    from otel_claude._cli import main as otel_claude

    capsys.readouterr()
    assert otel_claude(["tune", "--no-progress", *args]) == 0
    out = args[args.index("-o") + 1]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("rate limits, ")]
    return load_policy_text(Path(out).read_text(), out).limits, lines


def test_the_cli_writes_the_same_limits_from_files_chdb_and_a_server(
    loaded: Loaded, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits, printed = _tune([str(loaded.file), "-o", str(tmp_path / "file.yaml")], capsys)
    assert {limit.models for limit in limits} == {(SONNET,), (HAIKU,)}
    assert len(printed) == 2
    report = tmp_path / "r.md"
    assert _tune([f"chdb:{loaded.path}", "-o", str(tmp_path / "chdb.yaml"), "--report", str(report)],
                 capsys) == (limits, printed)
    assert "## Rate limits" in report.read_text()
    monkeypatch.setenv("CLICKHOUSE_PASSWORD", PASSWORD)
    url = loaded.server.url(user=USER, path=f"/default?table={JSON_TABLE}")
    assert _tune([url, "-o", str(tmp_path / "http.yaml")], capsys) == (limits, printed)
    # --no-limits still skips them.
    assert _tune([f"chdb:{loaded.path}", "-o", str(tmp_path / "none.yaml"), "--no-limits"], capsys) == ((), [])


def test_only_the_most_recent_calls_leave_the_server(loaded: Loaded) -> None:
    from_file = read_limit_rows([str(loaded.file)])
    newest = 100
    from_sql = load_limit_rows(loaded.runner, MAP_TABLE, Window(), newest)
    assert len(from_sql) == newest
    _assert_same_named(_by_name(from_sql, slice(None)), _by_name(from_file, slice(len(from_file) - newest, None)))
    # Over HTTP the bound holds for what is sent, not only for what is kept.
    sent = {}
    for calls in (newest, EVERYTHING):
        runner = _http(loaded)
        before = loaded.server.stats.bytes_sent
        try:
            assert len(load_limit_rows(runner, MAP_TABLE, Window(), calls)) == min(calls, len(from_file))
        finally:
            runner.close()
        sent[calls] = loaded.server.stats.bytes_sent - before
    assert sent[newest] * 5 < sent[EVERYTHING]
    # The server's own bound on result rows still holds, and its refusal is one line.
    runner = HttpRunner(parse_server_url(loaded.server.url(user=USER)), PASSWORD, Limits(max_result_rows=10))
    try:
        with pytest.raises(TraceInputError, match="larger than max_result_rows") as caught:
            load_limit_rows(runner, MAP_TABLE, Window(), newest)
    finally:
        runner.close()
    assert "\n" not in str(caught.value)


def test_the_calls_bound_is_validated(loaded: Loaded, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from otel_claude._cli import main as otel_claude

    out = str(tmp_path / "p.yaml")
    with pytest.raises(SystemExit):
        otel_claude(["tune", f"chdb:{loaded.path}", "-o", out, "--clickhouse-limit-calls", "0"])
    assert "--clickhouse-limit-calls" in capsys.readouterr().err
    assert otel_claude(["tune", f"chdb:{loaded.path}", "-o", out, "--clickhouse-limit-calls", "2000",
                        "--clickhouse-max-result-rows", "1000"]) == 2
    assert "more than --clickhouse-max-result-rows" in capsys.readouterr().err
    assert not Path(out).exists()


@pytest.mark.parametrize("table", [MAP_TABLE, JSON_TABLE])
def test_the_window_is_honoured(loaded: Loaded, table: str) -> None:
    day_start = (T0 // DAY + 1) * DAY  # the first whole day of the data
    window = Window(day_start, day_start + DAY)
    everything = read_limit_rows([str(loaded.file)])
    inside = (everything.start_ns >= day_start) & (everything.start_ns < day_start + DAY)
    assert 0 < inside.sum() < len(everything)
    from_sql = load_limit_rows(loaded.runner, table, window, EVERYTHING)
    _assert_same_rows(from_sql, read_limit_rows([str(loaded.file)], window))
    _assert_same_named(_by_name(from_sql, slice(None)), _by_name(everything, inside))
    # The window applies before the bound: the newest calls of the window, not of the table.
    newest = 50
    bounded = load_limit_rows(loaded.runner, table, window, newest)
    _assert_same_named(_by_name(bounded, slice(None)), _by_name(everything, np.flatnonzero(inside)[-newest:]))
