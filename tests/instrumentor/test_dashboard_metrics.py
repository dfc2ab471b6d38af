"""The metrics the dashboard's tuning row reads, recorded by real calls to the simulator (the live dashboard test
runs the same queries on Prometheus where it is installed): feedback scores and paired verdicts per task and model,
the API's rate-limit readings, the policy's load time and predicted cost per call."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anthropic
import pytest

import otel_claude
from otel_claude import semconv as sc

claude_sim = pytest.importorskip("claude_sim")
pytest.importorskip("aiohttp")

SONNET, HAIKU = "claude-sonnet-4-6", "claude-haiku-4-5"
POLICY = f"""schema_version: 1
version: "metrics-1"
mode: enforce
rules:
  - task: classify
    evaluate: {{model: {HAIKU}, share: 0.5, budget: 1.0, judge: {{model: {HAIKU}}}}}
    evidence: {{cost_per_call_before: 0.003, cost_per_call_after: 0.001}}
"""


def points(telemetry: Any, name: str) -> list[tuple[dict[str, Any], float]]:
    return [(dict(p.attributes), p.value) for p in telemetry.metric_points(name)]  # type: ignore[attr-defined]


def test_quality_ratelimit_and_policy_metrics(telemetry: Any, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    before = time.time()
    otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                           policy=str(policy))
    try:
        with claude_sim.SimServer(latency_scale=0.0) as sim:
            client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=0)
            with otel_claude.task("classify"):
                replies = [client.messages.create(model=SONNET, max_tokens=50,
                                                  messages=[{"role": "user", "content": f"q{i}"}]) for i in range(4)]
            for reply, score in zip(replies, (1.0, 0.5, 0.0, 0.5), strict=True):
                otel_claude.feedback(reply, score)
            otel_claude.feedback("msg_from_another_process", 1.0)  # a call this process never saw
            assert otel_claude.wait_for_evaluations(timeout=60)
        check_metrics(telemetry, before)
    finally:
        otel_claude.uninstrument()
    assert points(telemetry, sc.METRIC_POLICY_LOADED) == [], "no policy is in force once uninstrumented"


def check_metrics(telemetry: Any, before: float) -> None:

    key = {sc.GEN_AI_REQUEST_MODEL: SONNET, sc.TASK: "classify"}
    assert sorted(points(telemetry, sc.METRIC_FEEDBACK_SCORES), key=lambda p: len(p[0])) == [({}, 1), (key, 4)]
    assert dict((tuple(a.items()), v) for a, v in points(telemetry, sc.METRIC_FEEDBACK_SCORE_SUM))[
        tuple(key.items())] == 2.0
    verdicts = points(telemetry, sc.METRIC_VERDICTS)
    assert sum(v for _, v in verdicts) == 2  # every second classify call was paired
    assert all(a[sc.EVALUATION_CANDIDATE_MODEL] == HAIKU and a[sc.GEN_AI_REQUEST_MODEL] == SONNET
               and a[sc.TASK] == "classify" and a[sc.GEN_AI_EVALUATION_SCORE_LABEL] in sc.VERDICT_LABELS
               for a, _ in verdicts)

    limits = {a[sc.LIMIT_KIND_LABEL]: v for a, v in points(telemetry, sc.METRIC_RATELIMIT_LIMIT)
              if a[sc.GEN_AI_REQUEST_MODEL] == SONNET}
    remaining = {a[sc.LIMIT_KIND_LABEL]: v for a, v in points(telemetry, sc.METRIC_RATELIMIT_REMAINING)
                 if a[sc.GEN_AI_REQUEST_MODEL] == SONNET}
    assert set(limits) == set(remaining) == {"requests", "input_tokens", "output_tokens"}
    assert all(0 <= remaining[kind] < limits[kind] for kind in limits)

    (loaded,) = points(telemetry, sc.METRIC_POLICY_LOADED)
    assert loaded[0] == {sc.POLICY_VERSION: "metrics-1", sc.POLICY_MODE: "enforce"}
    assert before <= loaded[1] <= time.time()
    predicted = {a[sc.PREDICTION_LABEL]: v for a, v in points(telemetry, sc.METRIC_POLICY_PREDICTED_COST)
                 if a[sc.TASK] == "classify" and a[sc.POLICY_VERSION] == "metrics-1"}
    assert predicted == {"before": 0.003, "after": 0.001}
