"""User feedback: the share of calls scored, when, of which kind and how noisy; and that the driver's exported
spans carry the scenario's gaps and feedback delays."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest
from otlp_spans import file_spans, span_attributes

from claude_sim import ScenarioClock, SimServer
from claude_sim._jobs import FeedbackDraw, plan_jobs
from claude_sim._scenario_file import parse_scenario
from claude_sim.workload import run_workload
from otel_claude import semconv

SCENARIO = """
baseline: {model: claude-sonnet-4-6, max_tokens: 1000}
traffic: {calls_per_hour: 120}
tasks:
  rated:
    share: 0.6
    labels: 4
    input: {median: 100}
    output: {default: {median: 20}}
    quality: {default: 0.8}
    feedback: {share: 0.25, delay_s: {median: 600, sigma: 0.5}, kind: graded, noise: 0.2}
  silent:
    share: 0.4
    input: {median: 100}
    output: {default: {median: 20}}
    quality: {default: 0.8}
    feedback: {share: 0.0}
"""


@pytest.fixture(scope="module")
def scenario():
    return parse_scenario(SCENARIO, "feedback.yaml")


def test_planned_feedback_follows_share_delay_and_kind(scenario) -> None:
    jobs = plan_jobs(scenario, 8000, seed=1, stream_share=0.0)
    rated = [job for job in jobs if job.task == "rated"]
    scored = [job for job in rated if job.feedback is not None]
    n = len(rated)
    assert abs(len(scored) / n - 0.25) < 4 * math.sqrt(0.25 * 0.75 / n)
    assert not any(job.feedback for job in jobs if job.task == "silent")
    delays = [job.feedback.delay_s for job in scored]
    assert abs(statistics.median(delays) - 600) < 40
    assert all(job.feedback.kind == "graded" for job in scored)


def test_scores_lie_with_the_stated_noise() -> None:
    draws = [FeedbackDraw(0.0, "binary", flipped=i % 5 == 0, u_rating=0.3) for i in range(1000)]
    assert sum(d.score(True)[0] == 0.0 for d in draws) == 200  # a fifth of the right answers scored wrong
    graded = {FeedbackDraw(0.0, "graded", flipped, u).score(correct)
              for flipped in (False, True) for u in (0.2, 0.8) for correct in (False, True)}
    assert {value for value, _ in graded} == {0.0, 0.25, 0.75, 1.0}
    assert FeedbackDraw(0.0, "graded", False, 0.2).score(True) == (1.0, "rating_5")
    assert FeedbackDraw(0.0, "graded", True, 0.8).score(True) == (0.0, "rating_1")


@pytest.mark.parametrize("use_async", [False, True])
def test_exported_spans_carry_scenario_gaps_and_feedback_delays(scenario, tmp_path: Path, use_async: bool) -> None:
    out = tmp_path / "spans.jsonl"
    clock = ScenarioClock(0, fast_forward=True)
    with SimServer(scenario=scenario, seed=2, clock=clock, record=False) as sim:
        summary = run_workload(sim.base_url, scenario, calls=120, workers=3, seed=5, out=str(out), clock=clock,
                               use_async=use_async)
    assert summary.overall.errors == 0
    jobs = plan_jobs(scenario, 120, seed=5, stream_share=0.3)
    spans = file_spans(out)
    calls = sorted((s for s in spans if s["name"].startswith("chat ")), key=lambda s: int(s["startTimeUnixNano"]))
    feedback = [s for s in spans if s["name"] == semconv.FEEDBACK_SPAN]
    assert len(calls) == len(jobs)
    # Call spans start at their planned scenario time (the run began at the epoch, midnight).
    for span, job in zip(calls, jobs, strict=True):
        assert abs(int(span["startTimeUnixNano"]) / 1e9 - (clock.epoch + job.at)) < 0.5
    scored = {job.number: job for job in jobs if job.feedback is not None}
    assert len(feedback) == len(scored) > 5
    started = {span_attributes(s)[semconv.GEN_AI_RESPONSE_ID]: int(s["startTimeUnixNano"]) for s in calls}
    planned_delays = sorted(job.feedback.delay_s for job in scored.values())
    seen_delays = sorted((int(s["startTimeUnixNano"]) - started[span_attributes(s)[semconv.GEN_AI_RESPONSE_ID]]) / 1e9
                         for s in feedback)
    assert seen_delays == pytest.approx(planned_delays, abs=0.5)
    assert all(span_attributes(s)[semconv.TASK] == "rated" for s in feedback)
