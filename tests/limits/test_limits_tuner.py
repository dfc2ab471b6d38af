"""The tuner's rate-limit decisions: from spans of real runs against the simulator's enforced limits to the
policy's `limits` and the report's section; the pieces that need no run (the inference without headers, the
service-time bound) on constructed rows."""

from __future__ import annotations

import contextlib
import json
import math
import threading
from pathlib import Path

import anthropic
import numpy as np
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import otel_claude
from claude_sim import RateLimits, SimServer
from otel_claude.policy import load_policy_text
from tuner import cli
from tuner._limits import decide_limits, quantile_upper_bound
from tuner._limits_input import OK, RATE_LIMITED, LimitRows, read_limit_rows

SONNET = "claude-sonnet-4-6"
BIG = 10**8


def _record(path: Path, limits: RateLimits, max_tokens: int, sequential: int, burst: int) -> None:
    """Spans of `sequential` calls one after another, then `burst` calls at once, with no SDK retries."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(otel_claude.OTLPJsonFileSpanExporter(path)))
    with SimServer(seed=5, latency_scale=0.06, rate_limits=limits) as sim:
        otel_claude.instrument(tracer_provider=provider, setup_providers=False)
        try:
            client = anthropic.Anthropic(base_url=sim.base_url, api_key="k", max_retries=0, timeout=60)

            def call(text: str) -> None:
                with contextlib.suppress(anthropic.RateLimitError):
                    client.messages.create(model=SONNET, max_tokens=max_tokens,
                                           messages=[{"role": "user", "content": text}])

            for index in range(sequential):
                call(f"one at a time {index}")
            threads = [threading.Thread(target=call, args=(f"burst {i}",)) for i in range(burst)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        finally:
            otel_claude.uninstrument()
    provider.shutdown()


def _tune(tmp_path: Path, spans: Path) -> tuple[object, str]:
    policy, report = tmp_path / "policy.yaml", tmp_path / "report.md"
    assert cli.main([str(spans), "-o", str(policy), "--report", str(report)]) == 0
    return load_policy_text(policy.read_text(), "policy.yaml"), report.read_text()


def test_a_bursty_run_gets_limits_from_the_headers(tmp_path: Path) -> None:
    spans = tmp_path / "spans.jsonl"
    account = RateLimits(requests_per_minute=600, input_tokens_per_minute=BIG, output_tokens_per_minute=BIG,
                         enforce=True, burst_seconds=1.0)
    _record(spans, account, max_tokens=300, sequential=40, burst=30)
    policy, report = _tune(tmp_path, spans)
    (limit,) = policy.limits  # type: ignore[attr-defined]
    assert limit.models == (SONNET,) and limit.task == "*" and limit.adaptive
    assert limit.requests_per_minute == math.floor(600 * 0.98)
    assert limit.input_tokens_per_minute == math.floor(BIG * 0.98)
    evidence = limit.evidence
    assert evidence["rate_limited"] >= 5  # a burst of 30 against a bucket of 10 (fewer when threads start slowly)
    assert evidence["header_limits"]["requests"]["latest"] == 600
    assert evidence["binding_limit_at_429"] == {"requests": evidence["rate_limited"]}
    bound = evidence["service_time"]["upper_bound_s"]
    assert bound >= evidence["service_time"]["estimate_s"]
    assert limit.concurrency == max(1, math.ceil(limit.requests_per_minute / 60 * bound))
    assert "max_tokens_waste" not in evidence  # the output limit was never short
    assert "## Rate limits" in report and f"`{SONNET}`" in report


def test_oversized_max_tokens_are_flagged_when_the_output_limit_binds(tmp_path: Path) -> None:
    spans = tmp_path / "spans.jsonl"
    # 30,000 output tokens in the bucket: 7 calls reserving 4,096 fit at once, whatever they then use.
    account = RateLimits(requests_per_minute=BIG, input_tokens_per_minute=BIG, output_tokens_per_minute=30_000,
                         enforce=True)
    _record(spans, account, max_tokens=4096, sequential=35, burst=20)
    rows = read_limit_rows([str(spans)])
    (decision,) = decide_limits(rows)
    waste = decision.waste
    assert waste is not None and decision.evidence["binding_limit_at_429"].get("output_tokens", 0) >= 1
    assert waste["mean_max_tokens"] == 4096 and waste["mean_output_tokens"] < 300
    assert waste["unused_share_of_reserved"] > 0.9
    assert waste["calls_admitted_per_bucket_at_p99_output"] > 10 * waste["calls_admitted_per_bucket_at_mean_max_tokens"]
    assert "lower max_tokens" in decision.reason


def test_far_from_the_limits_no_limit_is_written(tmp_path: Path) -> None:
    spans = tmp_path / "spans.jsonl"
    _record(spans, RateLimits(), max_tokens=300, sequential=10, burst=5)
    policy, report = _tune(tmp_path, spans)
    assert policy.limits == ()  # type: ignore[attr-defined]
    assert "far from the limits" in report


def _rows(starts_s: list[float], errors: list[int], duration_s: float = 0.5) -> LimitRows:
    n = len(starts_s)
    start = (np.array(starts_s) * 1e9).astype(np.int64) + 10**18
    return LimitRows(
        models=[SONNET], model=np.zeros(n, np.int64), start_ns=start, end_ns=start + int(duration_s * 1e9),
        error=np.array(errors, np.int64), retries=np.zeros(n, np.int64), wait=np.zeros(n), stream=np.zeros(n, bool),
        ttft=np.full(n, np.nan), max_tokens=np.full(n, 1024, np.int64), output=np.full(n, 100, np.int64),
        input_uncached=np.full(n, 500, np.int64), limit=np.full((n, 3), -1, np.int64),
        remaining=np.full((n, 3), -1, np.int64),
    )


def test_without_headers_the_limit_is_the_busiest_minute_without_a_429() -> None:
    # 3 minutes at 2 calls/s, then a minute at 4 calls/s where 429s start.
    starts = [i * 0.5 for i in range(360)] + [180 + i * 0.25 for i in range(240)]
    errors = [OK] * 360 + [OK if i % 3 else RATE_LIMITED for i in range(240)]
    (decision,) = decide_limits(_rows(starts, errors))
    limit = decision.limit
    assert limit is not None and limit.input_tokens_per_minute is None
    assert 120 <= limit.requests_per_minute <= 125  # 2/s for a minute, plus the edge of the busier one
    assert "inferred" in decision.evidence["per_minute_source"]["requests"]


def test_without_headers_or_429s_the_limit_stays_unknown() -> None:
    (decision,) = decide_limits(_rows([i * 0.5 for i in range(200)], [OK] * 200))
    assert decision.limit is None and "far from the limits" in decision.reason


def test_the_service_time_bound_is_an_order_statistic_above_the_quantile() -> None:
    values = np.arange(1, 101, dtype=float)
    assert quantile_upper_bound(values, 0.9, 0.95) == 96.0  # k = ceil(90 + 1.645 * 3 + 0.5)
    rng = np.random.default_rng(0)
    misses = 0
    for _ in range(400):  # the bound covers the true p90 of an exponential in about 95% of samples
        sample = rng.exponential(1.0, 200)
        misses += quantile_upper_bound(sample, 0.9, 0.95) < -math.log(0.1)
    assert misses / 400 < 0.09


def test_jaeger_documents_give_the_same_rows(tmp_path: Path) -> None:
    tags = [{"key": "gen_ai.operation.name", "type": "string", "value": "chat"},
            {"key": "gen_ai.request.model", "type": "string", "value": SONNET},
            {"key": "error.type", "type": "string", "value": "rate_limit_error"},
            {"key": "anthropic.ratelimit.requests.limit", "type": "int64", "value": "300"},
            {"key": "anthropic.ratelimit.requests.remaining", "type": "int64", "value": "0"},
            {"key": "otel_claude.retries", "type": "int64", "value": "2"},
            {"key": "gen_ai.request.stream", "type": "bool", "value": "true"}]
    document = {"data": [{"spans": [{"operationName": "chat", "startTime": 1_700_000_000_000_000, "duration": 1500,
                                     "tags": tags}]}]}
    path = tmp_path / "jaeger.json"
    path.write_text(json.dumps(document, indent=1))
    rows = read_limit_rows([str(path)])
    assert len(rows) == 1 and rows.error[0] == RATE_LIMITED and rows.retries[0] == 2 and bool(rows.stream[0])
    assert rows.limit[0].tolist() == [300, -1, -1] and rows.remaining[0].tolist() == [0, -1, -1]


@pytest.mark.parametrize("no_limits", [True, False])
def test_the_cli_can_skip_the_rate_limit_pass(tmp_path: Path, no_limits: bool) -> None:
    spans = tmp_path / "spans.jsonl"
    account = RateLimits(requests_per_minute=600, enforce=True, burst_seconds=1.0)
    _record(spans, account, max_tokens=300, sequential=2, burst=20)
    args = [str(spans), "-o", str(tmp_path / "p.yaml")] + (["--no-limits"] if no_limits else [])
    assert cli.main(args) == 0
    policy = load_policy_text((tmp_path / "p.yaml").read_text(), "p.yaml")
    assert (policy.limits == ()) == no_limits
