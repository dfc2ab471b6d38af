"""ClickHouse `otel_traces`, both schema variants, read in chdb and through a server over HTTP: the dataset and the
policy equal the ones the file path builds from the same spans."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from otel_claude.policy import dump_policy
from tuner._dataset import Dataset, LatencySplit, ModelStats
from tuner._ingest import load_dataset
from tuner._issues import TraceInputError
from tuner._tune import TuneOptions, build_policy, decide_all
from tuner._window import Window

pytest.importorskip("chdb", reason="chdb (in-process ClickHouse) is not installed")
pytest.importorskip("clickhouse_connect", reason="clickhouse-connect is not installed")

from clickhouse_http import ChdbHttpServer
from clickhouse_tables import JSON_TABLE, MAP_TABLE, Loaded, loaded_tables
from span_sets import T0, mixed_calls

from tuner._clickhouse import load_clickhouse
from tuner._clickhouse_source import HttpRunner, Limits, describe_failure, parse_server_url

DAY = 86_400 * 10**9
USER, PASSWORD = "tuner", "s3cret-Pa55"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    file = tmp_path_factory.mktemp("file") / "t.json"
    with loaded_tables(tmp_path_factory.mktemp("chdb"), file, mixed_calls(), USER, PASSWORD) as tables:
        yield tables


def _http(loaded: Loaded, limits: Limits | None = None, password: str = PASSWORD, path: str = "") -> HttpRunner:
    return HttpRunner(parse_server_url(loaded.server.url(user=USER, path=path)), password, limits or Limits())


def _assert_same(sql: Dataset, file: Dataset) -> None:
    for name in ("spans", "calls", "feedback", "feedback_unmatched", "start_ns", "end_ns"):
        assert getattr(sql, name) == getattr(file, name), name
    assert [(m.task, m.model) for m in sql.models] == [(m.task, m.model) for m in file.models]
    for s, f in zip(sql.models, file.models, strict=True):
        for name in ("calls", "explore_calls", "errors", "truncated", "refusals", "cancelled", "max_tokens",
                     "requested_max_tokens", "requested_model"):
            assert getattr(s, name) == getattr(f, name), (s.task, s.model, name)
        for name in ("cost_total", "mean_input", "mean_output", "mean_cache_write", "ttft_p95", "duration_p95"):
            assert getattr(s, name) == pytest.approx(getattr(f, name), rel=1e-6), (s.task, s.model, name)
        for name in LatencySplit.__dataclass_fields__:
            value, expected = getattr(s.latency, name), getattr(f.latency, name)
            assert (value is None) == (expected is None) and (value is None or value == pytest.approx(expected)), (
                s.task, s.model, name, value, expected)
        assert (s.quality is None) == (f.quality is None)
        if s.quality is not None and f.quality is not None:
            assert s.quality.n == f.quality.n
            assert s.quality.mean == pytest.approx(f.quality.mean) and s.quality.sd == pytest.approx(f.quality.sd)
        # Samples are all rows here (below the bound), in a different order.
        def rows(m: ModelStats) -> list[tuple]:
            return sorted(zip(m.lengths.tolist(), m.sizes.tolist(), m.caps.tolist(), m.censored.tolist(), strict=True))

        assert rows(s) == rows(f)
        assert np.nansum(s.scores) == pytest.approx(np.nansum(f.scores))
        assert np.count_nonzero(~np.isnan(s.scores)) == np.count_nonzero(~np.isnan(f.scores))
    assert sql.prefixes == file.prefixes


def _policy(dataset: Dataset) -> str:
    options = TuneOptions()
    return dump_policy(build_policy(dataset, decide_all(dataset, options), options))


def _file_policy(loaded: Loaded, tmp_path: Path) -> str:
    """What the CLI writes from the OTLP file of the same spans, rate limits included."""
    from otel_claude._cli import main as otel_claude

    assert otel_claude(["tune", str(loaded.file), "-o", str(tmp_path / "file.yaml"), "--no-progress"]) == 0
    return (tmp_path / "file.yaml").read_text()


@pytest.mark.parametrize("table", [MAP_TABLE, JSON_TABLE])
def test_sql_dataset_matches_the_file_dataset(loaded: Loaded, table: str) -> None:
    from_file, issues = load_dataset([str(loaded.file)])
    assert issues.total == 0
    from_sql = load_clickhouse(loaded.runner, table)
    _assert_same(from_sql, from_file)
    # Feedback on failed and cancelled calls (no response id) and on msg_nowhere finds no call.
    assert from_sql.feedback_unmatched > 1
    assert any(m.requested_model != m.model for m in from_sql.models)  # calls a policy routed are in the data
    # Cancelled calls, new-style (otel_claude.cancelled) and old (error.type CancelledError), are not errors.
    cancelled = sum(m.cancelled for m in from_sql.models)
    assert cancelled == len({i for i in range(600) if i % 53 == 0 or i % 89 == 0})
    assert sum(m.errors for m in from_sql.models) == len({i for i in range(600) if i % 97 == 0} - {0})
    # Cache writes recorded under either name are all counted.
    assert sum(p.cache_write_tokens for p in from_sql.prefixes) == 400 * sum(
        1 for i in range(600) if i % 11 == 0 and i % 97 and i % 53 and i % 89
    )


@pytest.mark.parametrize("table", [MAP_TABLE, JSON_TABLE])
def test_server_over_http_gives_the_same_dataset_and_policy(loaded: Loaded, table: str) -> None:
    runner = _http(loaded)
    before = len(loaded.server.stats.queries)
    try:
        from_server = load_clickhouse(runner, table)
    finally:
        runner.close()
    from_file, _ = load_dataset([str(loaded.file)])
    _assert_same(from_server, from_file)
    assert _policy(from_server) == _policy(from_file) == _policy(load_clickhouse(loaded.runner, table))
    tuner_queries = loaded.server.stats.queries[before:]
    assert any(table in q for q in tuner_queries)
    # Every query of the tune carried the limits on the server's time, memory and result size.
    for settings in loaded.server.stats.settings[before:]:
        assert {"max_execution_time", "max_memory_usage", "max_result_rows", "result_overflow_mode"} <= set(settings)
    assert set(loaded.server.stats.encodings[before:]) == {"lz4"}  # the client's first choice, as a server does


@pytest.mark.parametrize("table", [MAP_TABLE, JSON_TABLE])
def test_window_is_pushed_into_where_and_prunes_partitions(loaded: Loaded, table: str) -> None:
    day_start = (T0 // DAY + 1) * DAY  # the first whole day of the data
    window = Window(day_start, day_start + DAY)
    from_sql = load_clickhouse(loaded.runner, table, window)
    from_file, _ = load_dataset([str(loaded.file)], window=window)
    _assert_same(from_sql, from_file)
    everything = load_clickhouse(loaded.runner, table)
    assert 0 < from_sql.calls < everything.calls
    assert day_start <= from_sql.start_ns <= from_sql.end_ns < day_start + DAY
    # The date partitions outside the window are never opened.
    from tuner._clickhouse import queries_for

    plan = loaded.runner.rows(f"EXPLAIN indexes = 1 {queries_for(loaded.runner, table, window).calls()}")
    text = "\n".join(row["explain"] for row in plan)
    selected, total = map(int, re.search(r"Min-Max.*?Parts: (\d+)/(\d+)", text, re.S).groups())
    assert selected < total, text


def test_bad_table_and_missing_table_fail_clearly(loaded: Loaded) -> None:
    with pytest.raises(TraceInputError, match="bad table name"):
        load_clickhouse(loaded.runner, "otel_traces; DROP TABLE x")
    with pytest.raises(TraceInputError, match="table nope: the table does not exist"):
        load_clickhouse(loaded.runner, "nope")
    runner = _http(loaded)
    try:
        with pytest.raises(TraceInputError) as caught:
            load_clickhouse(runner, "nope")
    finally:
        runner.close()
    message = str(caught.value)
    assert "\n" not in message and "the table does not exist" in message and "version" not in message


def test_limits_bound_the_server_and_fail_in_one_line(loaded: Loaded) -> None:
    runner = _http(loaded, Limits(max_result_rows=1))
    try:
        with pytest.raises(TraceInputError) as caught:
            load_clickhouse(runner, MAP_TABLE)
    finally:
        runner.close()
    message = str(caught.value)
    assert "larger than max_result_rows" in message and "\n" not in message
    # The limit held for that request only: the next client's tune reads everything.
    runner = _http(loaded)
    try:
        assert load_clickhouse(runner, MAP_TABLE).calls == load_clickhouse(loaded.runner, MAP_TABLE).calls
    finally:
        runner.close()


def test_connection_errors_are_one_line_without_the_password(loaded: Loaded) -> None:
    with pytest.raises(TraceInputError) as caught:
        _http(loaded, password="not-" + PASSWORD)
    assert "authentication failed" in str(caught.value) and PASSWORD not in str(caught.value)
    with pytest.raises(TraceInputError, match="database does not exist"):
        load_clickhouse(_http(loaded, path="/nowhere"), MAP_TABLE)
    with pytest.raises(TraceInputError, match=r"did not answer \(Connection refused\)"):
        HttpRunner(parse_server_url(f"clickhouse://{USER}@127.0.0.1:1"), PASSWORD, Limits())


def test_https_with_a_private_certificate_authority(loaded: Loaded, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    with ChdbHttpServer(loaded.runner._session, USER, PASSWORD, tls=(str(cert), str(key))) as server:
        # Without the CA the certificate cannot be verified: refused in one line.
        with pytest.raises(TraceInputError, match="certificate not trusted") as caught:
            HttpRunner(parse_server_url(server.url("https", USER)), PASSWORD, Limits())
        assert "\n" not in str(caught.value)
        runner = HttpRunner(parse_server_url(server.url("https", USER, f"/?ca_cert={cert}")), PASSWORD, Limits())
        try:
            from_https = load_clickhouse(runner, MAP_TABLE)
        finally:
            runner.close()
    _assert_same(from_https, load_clickhouse(loaded.runner, MAP_TABLE))


@pytest.mark.parametrize(("code", "server_says", "hint"), [
    (159, "Code: 159. DB::Exception: Timeout exceeded: elapsed 600.2 seconds, maximum: 600. (TIMEOUT_EXCEEDED) "
          "(version 25.8.1.1)", "ran past max_execution_time"),
    (241, "Code: 241. DB::Exception: Query memory limit exceeded: would use 8.00 GiB (attempt to allocate chunk of "
          "4194304 bytes), maximum: 8.00 GiB.: While executing AggregatingTransform. (MEMORY_LIMIT_EXCEEDED)\n"
          "0. DB::Exception::Exception(...)", "more than max_memory_usage"),
    (497, "Code: 497. DB::Exception: tuner: Not enough privileges. To execute this query, it's necessary to have the "
          "grant SELECT(Timestamp) ON otel.otel_traces. (ACCESS_DENIED)", "GRANT SELECT"),
])
def test_server_errors_become_one_line_with_what_to_change(code: int, server_says: str, hint: str) -> None:
    """Timeouts and memory limits cannot be provoked here without timing a slow query: the server's own texts."""
    line = describe_failure(code, server_says)
    assert hint in line and "\n" not in line and "version" not in line and "DB::Exception" not in line


def test_url_forms_and_password_in_the_url_is_refused() -> None:
    address = parse_server_url("clickhouse://alice@db.example:9000/otel?table=spans")
    assert (address.interface, address.host, address.port, address.database, address.table, address.user) == (
        "http", "db.example", 9000, "otel", "spans", "alice")
    assert parse_server_url("https://db.example/otel").port == 8443
    assert parse_server_url("clickhouse://db.example").port == 8123
    with pytest.raises(TraceInputError, match="do not put a password in the URL") as caught:
        parse_server_url("clickhouse://alice:hunter2@db.example/otel")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(TraceInputError, match="unknown URL option"):
        parse_server_url("clickhouse://db.example/otel?tabel=x")


def test_cli_tunes_from_the_server_with_credentials_from_the_environment(
    loaded: Loaded, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from otel_claude._cli import main as otel_claude

    url = loaded.server.url(user=USER, path=f"/default?table={JSON_TABLE}")
    out = [str(tmp_path / "p.yaml"), str(tmp_path / "r.html"), str(tmp_path / "r.md")]
    monkeypatch.delenv("CLICKHOUSE_PASSWORD", raising=False)
    # No password configured: the server refuses, in one line.
    assert otel_claude(["tune", url, "-o", out[0], "--no-progress"]) == 2
    refused = capsys.readouterr()
    assert "authentication failed" in refused.err and len(refused.err.strip().splitlines()) == 1

    monkeypatch.setenv("CLICKHOUSE_PASSWORD", PASSWORD)
    expected = _file_policy(loaded, tmp_path)
    capsys.readouterr()
    assert otel_claude(["tune", url, "-o", out[0], "--report", out[1], "--report", out[2], "--no-progress"]) == 0
    printed = capsys.readouterr()
    from_file, _ = load_dataset([str(loaded.file)])
    assert Path(out[0]).read_text() == expected
    assert f"{from_file.calls} calls read" in printed.out
    header = next(line for line in Path(out[2]).read_text().splitlines() if line.startswith("| model |"))
    assert header.rstrip(" |").endswith("cancelled")  # cancelled calls have their own column, apart from errors

    secret = tmp_path / "secret"
    secret.write_text(PASSWORD + "\n")
    monkeypatch.delenv("CLICKHOUSE_PASSWORD")
    assert otel_claude(["tune", url, "-o", out[0], "--clickhouse-password-file", str(secret), "--no-progress"]) == 0
    printed2 = capsys.readouterr()
    # The password appears in nothing the tune printed, logged or wrote.
    written = "".join(Path(p).read_text() for p in out)
    everything = refused.out + refused.err + printed.out + printed.err + printed2.out + printed2.err + written
    assert PASSWORD not in everything + caplog.text


def test_cli_reads_a_chdb_table(loaded: Loaded, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from otel_claude._cli import main as otel_claude

    expected = _file_policy(loaded, tmp_path)
    capsys.readouterr()
    assert otel_claude(["tune", f"chdb:{loaded.path}", "-o", str(tmp_path / "p.yaml"), "--no-progress"]) == 0
    from_file, _ = load_dataset([str(loaded.file)])
    assert (tmp_path / "p.yaml").read_text() == expected
    assert f"{from_file.calls} calls read" in capsys.readouterr().out
    assert otel_claude(["tune", f"chdb:{loaded.path}", str(tmp_path / "p.yaml")]) == 2
    assert "cannot be combined" in capsys.readouterr().err
