"""Tune N spans (default 10,000,000) held in ClickHouse: from the chdb directory, and over HTTP from a server.

    python bench/bench_clickhouse.py [--spans 10000000] [--dir /tmp/otel-claude-bench-ch]

The spans are generated inside chdb with one INSERT ... SELECT FROM numbers() per million rows into the Collector
clickhouseexporter's Map table (generated once, reused while the directory holds N spans). Then, one after the
other, each in its own child process: `otel-claude tune chdb:DIR` (the baseline: the engine runs inside the tuner's
process), and `otel-claude tune clickhouse://...` against tests/clickhouse_http.py serving the same directory from
another process (chdb behind a loopback server that speaks ClickHouse's HTTP interface). Printed: wall time of each
(interpreter start and imports included), the tuner's own peak RSS and the server's (wait4), the bytes of response
bodies that left the server (compressed, as sent), and whether both policies are identical. Targets (issue 18): at
most 100 MB leaving the server, the tuner's peak RSS under 500 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "tuner"))

from clickhouse_tables import MAP_DDL as DDL  # noqa: E402  (the exporter's own table definition)
from clickhouse_tables import MAP_TABLE as TABLE  # noqa: E402

from otel_claude import semconv as sc  # noqa: E402
from otel_claude.catalog import resolve  # noqa: E402

T0_NS = 1_763_900_000_000_000_000
SPACING_NS = 50_000_000  # 20 spans a second: 10M spans cover about 5.8 days, so several daily partitions
CHUNK = 1_000_000
TASKS = [("classify", 3000, 80), ("summarize", 9000, 400), ("extract", 6000, 250), ("chat", 1500, 600)]
MODELS = ["claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6"]
PASSWORD = "bench-only-password"

def _pick(array: list[str], index: str) -> str:
    return "[" + ", ".join(f"'{v}'" for v in array) + f"][{index} + 1]"


def _insert_sql(first: int, count: int) -> str:
    """Rows first..first+count-1: every fifth span is the feedback for the call before it (about 25% of calls)."""
    prices = [resolve(m) for m in MODELS]
    price_in = "[" + ", ".join(str(p.input) for p in prices if p) + "]"  # type: ignore[union-attr]
    price_out = "[" + ", ".join(str(p.output) for p in prices if p) + "]"  # type: ignore[union-attr]
    u = "(cityHash64(number, {salt}) % 1000000007 / 1000000007.0)"  # a uniform draw in [0, 1), reproducible
    call = "intDiv(number, 5) * 5 + (number % 5 = 4 ? 3 : number % 5)"  # the call a feedback span is about
    return f"""
    INSERT INTO {TABLE} (Timestamp, TraceId, SpanId, SpanName, SpanKind, ServiceName, ScopeName, ScopeVersion,
                         SpanAttributes, Duration, StatusCode)
    SELECT
        fromUnixTimestamp64Nano(toInt64({T0_NS} + number * {SPACING_NS})) AS Timestamp,
        lower(hex(sipHash128(number))) AS TraceId, lower(hex(cityHash64(number))) AS SpanId,
        is_feedback ? '{sc.FEEDBACK_SPAN}' : concat('chat ', model) AS SpanName,
        'Client', 'bench', 'otel_claude', '0.1.0',
        is_feedback
            ? map('{sc.GEN_AI_RESPONSE_ID}', concat('msg_', toString({call})),
                  '{sc.GEN_AI_EVALUATION_NAME}', 'feedback',
                  '{sc.GEN_AI_EVALUATION_SCORE_VALUE}', {u.format(salt=7)} < 0.9 ? '1' : '0')
            : map('{sc.GEN_AI_OPERATION_NAME}', 'chat', '{sc.GEN_AI_PROVIDER_NAME}', 'anthropic',
                  '{sc.GEN_AI_REQUEST_MODEL}', model, '{sc.GEN_AI_REQUEST_MAX_TOKENS}', '2048',
                  '{sc.GEN_AI_RESPONSE_ID}', concat('msg_', toString(number)), '{sc.GEN_AI_RESPONSE_MODEL}', model,
                  '{sc.GEN_AI_RESPONSE_FINISH_REASONS}', output >= 2048 ? '["max_tokens"]' : '["end_turn"]',
                  '{sc.GEN_AI_USAGE_INPUT_TOKENS}', toString(input), '{sc.GEN_AI_USAGE_OUTPUT_TOKENS}',
                  toString(least(output, 2048)), '{sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK}',
                  toString(round(0.2 + 1.8 * {u.format(salt=3)}, 3)), '{sc.STREAM_COMPLETE}', 'true',
                  '{sc.TASK}', task, '{sc.PREFIX_FINGERPRINT}', concat(task, '-', toString(cityHash64(number, 4) % 4)),
                  '{sc.PREFIX_TOKENS_ESTIMATE}', toString(prefix_tokens), '{sc.INPUT_TOKENS_ESTIMATE}', toString(input),
                  '{sc.COST_USD}', toString((input * {price_in}[model_index + 1]
                                             + least(output, 2048) * {price_out}[model_index + 1]) / 1e6))
            AS SpanAttributes,
        toUInt64(1e9 * (0.5 + 3 * {u.format(salt=5)})) AS Duration, 'Unset'
    FROM (
        SELECT number, number % 5 = 4 AS is_feedback, intDiv(number, 5) % 4 AS task_index,
            {u.format(salt=1)} < 0.7 ? 0 : 1 + toUInt8({u.format(salt=2)} < 0.5) AS model_index,
            {_pick(MODELS, "model_index")} AS model,
            {_pick([t[0] for t in TASKS], "task_index")} AS task,
            [{", ".join(str(t[1]) for t in TASKS)}][task_index + 1] AS prefix_tokens,
            prefix_tokens + 100 + cityHash64(number, 6) % 3900 AS input,
            toUInt64(-[{", ".join(str(t[2]) for t in TASKS)}][task_index + 1] * log(1 - {u.format(salt=8)})) + 1
                AS output
        FROM numbers({first}, {count})
    )
    """


def generate(directory: Path, spans: int) -> None:
    from chdb import session

    db = session.Session(str(directory))
    db.query(DDL)
    have = int(db.query(f"SELECT count() FROM {TABLE}", "CSV").bytes())
    for first in range(have, spans, CHUNK):
        db.query(_insert_sql(first, min(CHUNK, spans - first)))
        print(f"  {min(first + CHUNK, spans):,} spans", flush=True)
    db.query(f"OPTIMIZE TABLE {TABLE} FINAL")
    db.close()


def _measured(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    start = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = child.stdout.read() if child.stdout else b""  # type: ignore[union-attr]
    err = child.stderr.read() if child.stderr else b""  # type: ignore[union-attr]
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"child failed: {' '.join(args)}\n{err.decode()}")
    return wall, usage.ru_maxrss / 1024, out.decode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/otel-claude-bench-ch"))
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if args.generate_only:
        generate(args.dir, args.spans)
        return 0
    stamp = args.dir / "bench-spans.count"
    if not (stamp.exists() and stamp.read_text() == str(args.spans)):
        started = time.perf_counter()
        print(f"generating {args.spans:,} spans in {args.dir}")
        # In a child: chdb holds a data directory for the life of the process that opened it.
        subprocess.run([sys.executable, __file__, "--spans", str(args.spans), "--dir", str(args.dir),
                        "--generate-only"], check=True, env=env)
        stamp.write_text(str(args.spans))
        print(f"generated in {time.perf_counter() - started:.0f} s")

    tune = [sys.executable, "-m", "otel_claude._cli", "tune", "--no-progress"]
    chdb_policy = args.dir.with_suffix(".chdb-policy.yaml")
    chdb_wall, chdb_rss, _ = _measured([*tune, f"chdb:{args.dir}", "-o", str(chdb_policy)], env)

    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "clickhouse_http.py"), "--path", str(args.dir), "--user", "bench"],
        stdout=subprocess.PIPE, env={**env, "CLICKHOUSE_PASSWORD": PASSWORD}, text=True,
    )
    try:
        port = int(server.stdout.readline().split()[1])  # type: ignore[union-attr]
        http_policy = args.dir.with_suffix(".http-policy.yaml")
        url = f"clickhouse://bench@127.0.0.1:{port}/default?table={TABLE}"
        http_wall, http_rss, http_out = _measured([*tune, url, "-o", str(http_policy)],
                                                  {**env, "CLICKHOUSE_PASSWORD": PASSWORD})
    finally:
        server.send_signal(signal.SIGTERM)
        stats_line = server.stdout.read()  # type: ignore[union-attr]
        _, _, server_usage = os.wait4(server.pid, 0)
    stats = json.loads(stats_line.split("stats ", 1)[1])
    sent_mb = stats["bytes_sent"] / 1e6
    same = chdb_policy.read_text() == http_policy.read_text()

    print(f"spans: {args.spans:,} in {TABLE} (Map variant)")
    print(f"tune from chdb:DIR (engine in the tuner's process): {chdb_wall:7.1f} s wall, peak RSS {chdb_rss:6.0f} MB")
    print(f"tune from clickhouse:// (server in another process): {http_wall:7.1f} s wall, peak RSS {http_rss:6.0f} MB")
    print(f"ratio server / chdb wall time: {http_wall / chdb_wall:.2f}x")
    print(f"left the server: {sent_mb:.2f} MB in {stats['requests']} responses (target <= 100 MB)")
    print(f"server process peak RSS (chdb executing the SQL): {server_usage.ru_maxrss / 1024:.0f} MB")
    print(f"tuner peak RSS over HTTP: {http_rss:.0f} MB (target < 500 MB)")
    print(f"policies identical: {same}")
    print("summary (clickhouse://):\n" + http_out)
    return 0 if sent_mb <= 100 and http_rss < 500 and same else 1


if __name__ == "__main__":
    sys.exit(main())
