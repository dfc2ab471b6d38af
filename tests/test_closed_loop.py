"""End to end: workload -> OTLP JSON spans -> tuner -> policy -> enforced rerun is cheaper at the same quality."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("sklearn")

from claude_sim import SimServer, load_scenario
from claude_sim.workload import run_workload
from otel_claude._policy_schema import load_policy_text
from tuner.cli import main as tune

MARGIN = 0.02


def test_closed_loop_lowers_cost_and_keeps_quality(tmp_path: Path) -> None:
    scenario = load_scenario("default")
    spans = tmp_path / "baseline.jsonl"
    policy_path = tmp_path / "policy.yaml"
    with SimServer(scenario=scenario, seed=3, latency_scale=0.0) as sim:
        before = run_workload(sim.base_url, scenario, calls=800, workers=8, seed=3, out=str(spans))
        assert before.overall.errors == 0
        assert tune([str(spans), "-o", str(policy_path), "--quality-margin", str(MARGIN), "--no-progress"]) == 0
        policy = load_policy_text(policy_path.read_text(), str(policy_path))
        assert policy.rules, "the tuner found nothing to change on a scenario built to have savings"
        after = run_workload(sim.base_url, scenario, calls=800, workers=8, seed=3, policy=str(policy_path),
                             out=str(tmp_path / "after.jsonl"))
    assert after.overall.errors == 0
    assert after.overall.cost_per_call < 0.8 * before.overall.cost_per_call
    assert after.overall.quality >= before.overall.quality - MARGIN
    assert after.overall.truncation_rate <= max(0.01, before.overall.truncation_rate) + 0.01
    # The enforced run's spans say which policy shaped them.
    assert policy.version in (tmp_path / "after.jsonl").read_text()
