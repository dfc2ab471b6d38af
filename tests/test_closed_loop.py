"""End to end: workload -> OTLP JSON spans -> tuner -> policy -> enforced rerun is cheaper at the same quality."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("sklearn")

from claude_sim import SimServer, load_scenario
from claude_sim.workload import run_workload
from otel_claude.policy import load_policy_text
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


def test_retuning_on_routed_traffic_keeps_the_route(tmp_path: Path) -> None:
    """A policy routes a task to a cheaper model; the tuner then sees only that model's calls, while the callers
    still ask for the old one. With no evidence against the route, the new policy must keep it."""
    scenario = load_scenario("default")
    routed = tmp_path / "routed.yaml"
    routed.write_text(
        "schema_version: 1\nversion: routed\nrules:\n  - task: summarize\n    model: claude-haiku-4-5\n"
    )
    spans = tmp_path / "routed.jsonl"
    retuned = tmp_path / "retuned.yaml"
    with SimServer(scenario=scenario, seed=4, latency_scale=0.0) as sim:
        run = run_workload(sim.base_url, scenario, calls=600, workers=8, seed=4, out=str(spans), policy=str(routed))
    assert run.overall.errors == 0
    assert tune([str(spans), "-o", str(retuned), "--no-progress"]) == 0
    rules = [rule for rule in load_policy_text(retuned.read_text(), str(retuned)).rules if rule.task == "summarize"]
    assert rules and all(rule.model == "claude-haiku-4-5" for rule in rules)
