"""The closed loop on the simulator: spans from the real instrumented SDK, tuned twice, make the known-right calls.

A two-task scenario whose right answer is plain from its definition: `easy` is as good on Haiku and reuses a long
system prompt on every call (route to Haiku, cache it); `hard` is far worse on Haiku, has a short prompt and an
output tail beyond the caller's 1024 (stay on Sonnet, do not cache, raise the cap).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("claude_sim.workload", reason="the simulator's workload driver is not available")

from claude_sim import SimServer, load_scenario
from claude_sim.workload import run_workload
from otel_claude.policy import Policy, load_policy_text
from tuner.cli import main as tune

SCENARIO = """
name: tuner-test
description: two tasks with an obvious right policy
baseline: {model: claude-sonnet-4-6, max_tokens: 1024}
tasks:
  easy:
    share: 0.5
    answer: {kind: text, position: start, form: line}
    labels: 4
    system: {tokens: 5200, variants: 1}
    input: {median: 100, sigma: 0.3, min: 20, max: 400}
    output: {default: {median: 20, sigma: 0.4, min: 4, max: 200}}
    quality: {default: 0.5, claude-sonnet-4-6: 0.95, claude-haiku-4-5: 0.95}
  hard:
    share: 0.5
    answer: {kind: text, position: end}
    labels: 4
    system: {tokens: 300, variants: 1}
    input: {median: 300, sigma: 0.3, min: 20, max: 2000}
    output: {default: {median: 400, sigma: 0.6, min: 20, max: 6000}}
    quality: {default: 0.5, claude-sonnet-4-6: 0.95, claude-haiku-4-5: 0.4}
"""
# Paired evaluation on up to half the calls of a task, with its spend up to half the task's: about 170 verdicts on
# `easy` in the second round, which decide a 0.15 margin reliably (answers that agree give a narrow bound).
# `hard` answers in prose, where no cheap grader can say which answer is right: the judge does.
OPTIONS = ["--quality-margin", "0.15", "--evaluate-share", "0.5", "--evaluation-budget", "0.5",
           "--judge", "claude-sonnet-4-6", "--candidates", "claude-haiku-4-5", "--no-progress"]


def _rules(path: Path) -> dict[str, object]:
    policy: Policy = load_policy_text(path.read_text(), str(path))
    return {rule.task: rule for rule in policy.rules}


def test_two_rounds_on_the_simulator_make_the_right_calls(tmp_path: Path) -> None:
    scenario_file = tmp_path / "scenario.yaml"
    scenario_file.write_text(SCENARIO)
    scenario = load_scenario(str(scenario_file))
    with SimServer(scenario=scenario, seed=1, latency_scale=0.0) as sim:
        run_workload(sim.base_url, scenario, calls=300, out=str(tmp_path / "r0.jsonl"), seed=1, workers=1)
        assert tune([str(tmp_path / "r0.jsonl"), "-o", str(tmp_path / "p0.yaml"), *OPTIONS]) == 0
        first = _rules(tmp_path / "p0.yaml")
        easy, hard = first["easy"], first["hard"]
        # Only Sonnet was called: no routing yet, paired evaluation of Haiku where it is cheaper, nobody served it.
        assert easy.model is None and hard.model is None
        assert easy.evaluate is not None and easy.evaluate.model == "claude-haiku-4-5"
        assert hard.evaluate is not None and hard.evaluate.model == "claude-haiku-4-5"
        assert easy.explore is None and hard.explore is None
        assert easy.cache is not None and easy.cache.ttl == "5m"
        assert hard.cache is None
        assert hard.max_tokens == 2048 and hard.max_tokens_mode == "set"  # lognormal tail over 1024: censored

        run_workload(
            sim.base_url,
            scenario,
            calls=700,
            out=str(tmp_path / "r1.jsonl"),
            seed=2,
            policy=str(tmp_path / "p0.yaml"),
            workers=1,  # one worker: which calls the policy evaluates is then the same on every run
        )
    spans = [str(tmp_path / "r0.jsonl"), str(tmp_path / "r1.jsonl")]
    assert tune([*spans, "-o", str(tmp_path / "p1.yaml"), *OPTIONS]) == 0
    second = _rules(tmp_path / "p1.yaml")
    easy, hard = second["easy"], second["hard"]
    assert easy.model == "claude-haiku-4-5"
    assert hard.model is None  # Haiku's answers lose to Sonnet's far beyond the margin
    assert "claude-haiku-4-5" in hard.evidence["routing"]["rejected"]
    assert easy.cache is not None and easy.cache.ttl == "5m"
    assert hard.max_tokens is not None and hard.max_tokens >= 2048
    haiku = easy.evidence["routing"]["models"]["claude-haiku-4-5"]
    assert haiku["paired_verdicts"] >= 30 and haiku["gap_bounds"][0] >= -0.15
