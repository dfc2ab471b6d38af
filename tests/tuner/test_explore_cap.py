"""Per model where they differ: an exploration candidate whose answers run longer gets its own cap."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import tuner.synthetic as syn
from otel_claude.policy import load_policy_text
from tuner.cli import main as tune

SONNET, HAIKU = "claude-sonnet-4-6", "claude-haiku-4-5"


def test_exploration_candidate_gets_its_own_cap(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    spans = []
    t = 1_800_000_000 * 10**9
    # Sonnet: the current model, scored, short answers. Haiku: a few explored calls, long answers, few scores.
    for i, (model, scored, lengths) in enumerate(
        [(SONNET, True, rng.integers(50, 120, 300)), (HAIKU, False, rng.integers(300, 700, 40))]
    ):
        for j, length in enumerate(lengths):
            t += 10**9
            rid = f"msg_{i}_{j}"
            spans.append(syn.call(start_ns=t, model=model, output_tokens=int(length), task="t", max_tokens=4096,
                                  response_id=rid, exploration=model == HAIKU))
            if scored or j < 5:
                spans.append(syn.feedback(start_ns=t + 1, response_id=rid, score=float(rng.random() < 0.9), task="t"))
    path = syn.write_otlp(tmp_path / "spans.jsonl", spans)
    out = tmp_path / "policy.yaml"
    args = ["--truncation-target", "0.05", "--explore-share", "0.1", "--no-progress"]
    assert tune([str(path), "-o", str(out), *args]) == 0
    (rule,) = load_policy_text(out.read_text(), str(out)).rules
    assert rule.explore is not None and rule.explore.model == HAIKU
    assert rule.evaluate is not None and rule.evaluate.model == HAIKU
    assert rule.max_tokens is not None and rule.max_tokens < 120  # fitted to Sonnet's answers
    # Haiku's own cap, fitted to its own answers, for the calls served to it and for its shadow copies.
    assert rule.explore.max_tokens is not None and rule.explore.max_tokens >= 600
    assert rule.evaluate.max_tokens == rule.explore.max_tokens


def test_callers_on_two_models_get_a_cap_each(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    spans = []
    t = 1_800_000_000 * 10**9
    # No feedback: routing keeps things as they are; the two models' answers differ in length.
    for model, lengths in ((SONNET, rng.integers(50, 120, 300)), (HAIKU, rng.integers(400, 800, 200))):
        for length in lengths:
            t += 10**9
            spans.append(syn.call(start_ns=t, model=model, output_tokens=int(length), task="t", max_tokens=4096))
    path = syn.write_otlp(tmp_path / "spans.jsonl", spans)
    out = tmp_path / "policy.yaml"
    assert tune([str(path), "-o", str(out), "--no-progress"]) == 0
    rules = load_policy_text(out.read_text(), str(out)).rules
    assert [r.when.models if r.when else None for r in rules] == [(HAIKU,), None]
    haiku_rule, task_rule = rules
    assert haiku_rule.max_tokens >= 790 and task_rule.max_tokens < 130
    assert haiku_rule.model is None and task_rule.model is None
