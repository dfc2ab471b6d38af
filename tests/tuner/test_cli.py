"""`otel-claude tune` end to end: files in; a valid, deterministic policy, reports and a summary out."""

from __future__ import annotations

import random
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest

from otel_claude._cli import main as otel_claude
from otel_claude.policy import load_policy_text
from tuner import synthetic as syn

T0 = 1_763_900_000_000_000_000


def _workload(path: Path, seed: int = 7) -> Path:
    """Two tasks with a known right answer.

    classify: Sonnet serves; a shadow copy of every call went to Haiku and the graders found the two agree on 97%
    of requests, each winning half the rest -> route to Haiku; outputs are short (<= 60 tokens) under a 1024 cap ->
    lower the cap; a 5,000-token system prompt reused every ~20 s -> cache 5m.
    draft: sonnet only, 12% of calls truncated at 256 -> raise the cap; no prefix -> no caching; half the calls
    scored; haiku is cheaper but unseen on this task -> evaluate it.
    """
    rng = random.Random(seed)
    spans = []
    t = T0
    for i in range(2400):
        t += int(rng.expovariate(1 / 20) * 1e9)
        rid = f"msg_{i}"
        if i % 3:
            common = dict(task="classify", input_tokens=5400, max_tokens=1024, prefix="5e7a0c11", prefix_tokens=5000)
            spans.append(syn.call(start_ns=t, model="claude-sonnet-4-6", output_tokens=rng.randint(5, 60),
                                  response_id=rid, ttft=rng.uniform(0.2, 0.6), **common))
            spans.append(syn.call(start_ns=t + 1, model="claude-haiku-4-5", output_tokens=rng.randint(5, 60),
                                  response_id=f"{rid}-shadow", role="shadow", **common))
            d = (1.0 if i % 200 < 3 else -1.0) if i % 100 < 3 else 0.0
            spans.append(syn.verdict(start_ns=t + 2, response_id=rid, task="classify", value=d,
                                     incumbent="claude-sonnet-4-6", candidate="claude-haiku-4-5"))
        else:
            length = 400 if rng.random() < 0.12 else rng.randint(80, 200)
            spans.append(
                syn.call(
                    start_ns=t,
                    model="claude-sonnet-4-6",
                    task="draft",
                    output_tokens=length,
                    max_tokens=256,
                    response_id=rid,
                )
            )
            if i % 2:
                spans.append(syn.feedback(start_ns=t + 5, response_id=rid, score=0.8))
    return syn.write_otlp(path, spans)


def test_tune_writes_a_valid_deterministic_policy_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    traces = _workload(tmp_path / "traces.json")
    # 800 scored calls per model at 95% give a 95% interval on the difference of +-0.021: a 0.03 margin decides.
    args = ["tune", str(traces), "-o", str(tmp_path / "p1.yaml"), "--quality-margin", "0.03"]
    args += ["--report", str(tmp_path / "r.html")]
    assert otel_claude([*args, "--report", str(tmp_path / "r.md")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"classify\s+1,600\s+claude-sonnet-4-6 -> claude-haiku-4-5", out)

    text = (tmp_path / "p1.yaml").read_text()
    policy = load_policy_text(text, "p1.yaml")
    rules = {r.task: r for r in policy.rules}
    classify, draft = rules["classify"], rules["draft"]
    assert classify.model == "claude-haiku-4-5"
    assert classify.max_tokens is not None and 55 <= classify.max_tokens <= 60 and classify.max_tokens_mode == "cap"
    assert classify.cache is not None and classify.cache.ttl == "5m"
    assert draft.model is None and (draft.max_tokens, draft.max_tokens_mode) == (512, "set")
    assert draft.cache is None
    assert draft.explore is None  # serving an unproven model to users is opt-in (--explore-share)
    assert draft.evaluate is not None and draft.evaluate.model == "claude-haiku-4-5" and draft.evaluate.share <= 0.2
    assert draft.evaluate.pair_cost is not None and draft.evaluate.pair_cost > 0
    evidence = classify.evidence
    assert evidence["cost_per_call_after"] < evidence["cost_per_call_before"]
    assert evidence["saving_per_1k_calls"] == pytest.approx(
        1000 * (evidence["cost_per_call_before"] - evidence["cost_per_call_after"]), rel=1e-3
    )
    # 2400 calls, 1600 shadow calls, 1600 classify verdicts, 400 draft scores.
    assert policy.metadata["span_count"] == 6000 and policy.metadata["call_count"] == 2400
    assert policy.metadata["options"]["truncation_target"] == 0.01
    assert re.fullmatch(r"2025\d{4}-[0-9a-f]{8}", policy.version)

    # Same input, same options: byte-identical policy.
    assert otel_claude(["tune", str(traces), "-o", str(tmp_path / "p2.yaml"), "--quality-margin", "0.03"]) == 0
    assert (tmp_path / "p2.yaml").read_text() == text

    html = (tmp_path / "r.html").read_text()
    assert html.count("<svg") >= 4 and policy.version in html
    assert not re.search(r"(src|href)=\"https?:", html)  # self-contained
    for svg in re.findall(r"<svg.*?</svg>", html, flags=re.S):
        ElementTree.fromstring(svg)  # every chart is well-formed XML
    markdown = (tmp_path / "r.md").read_text()
    assert "| classify | 1,600 |" in markdown and "truncation rate" in markdown


def test_options_change_the_decision(tmp_path: Path) -> None:
    traces = _workload(tmp_path / "traces.json")
    out = tmp_path / "p.yaml"
    args = ["--max-ttft-p95", "0.1", "--explore-share", "0.01", "--quality-margin", "0.03"]
    assert otel_claude(["tune", str(traces), "-o", str(out), *args]) == 0
    policy = load_policy_text(out.read_text(), "p.yaml")
    rules = {r.task: r for r in policy.rules}
    assert rules["classify"].model is None  # both models exceed the TTFT limit: keep the current one
    assert rules["draft"].explore is not None and rules["draft"].explore.share == 0.01


def test_bad_input_and_bad_options_exit_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text("hello\n")
    assert otel_claude(["tune", str(junk), "-o", str(tmp_path / "p.yaml")]) == 2
    assert "junk.json: not trace data" in capsys.readouterr().err
    assert not (tmp_path / "p.yaml").exists()
    with pytest.raises(SystemExit) as info:
        otel_claude(["tune", str(junk), "--explore-share", "0.3"])
    assert info.value.code == 2
    assert "explore share must be in" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        otel_claude(["tune", str(junk), "--candidates", "gpt-4o"])
    assert "unknown model(s): gpt-4o" in capsys.readouterr().err


def test_progress_bar_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    traces = _workload(tmp_path / "traces.json")
    assert otel_claude(["tune", str(traces), "-o", str(tmp_path / "p.yaml"), "--progress"]) == 0
    err = capsys.readouterr().err
    # tqdm's bar: description, percentage, bytes done of the total, and a rate in bytes per second.
    assert re.search(r"reading traces: +100%\|.*\| ([\d.]+[kMG]?)/\1 \[[\d:]+<[\d:]+, +[\d.]+[kMG]?B/s\]", err), err


def test_size_dependent_quality_gives_conditional_rules(tmp_path: Path) -> None:
    rng = random.Random(11)
    spans = []
    t = T0
    for i in range(8000):
        t += 10**9
        model = "claude-haiku-4-5" if i % 2 else "claude-sonnet-4-6"
        large = i % 4 >= 2
        good = 0.6 if (large and model == "claude-haiku-4-5") else 0.95
        rid = f"msg_{i}"
        size = rng.randint(15_000, 30_000) if large else rng.randint(200, 2000)
        spans.append(
            syn.call(start_ns=t, model=model, task="answer", input_tokens=size, output_tokens=50, response_id=rid)
        )
        spans.append(syn.feedback(start_ns=t + 5, response_id=rid, score=float(rng.random() < good)))
    traces = syn.write_otlp(tmp_path / "t.json", spans)
    # Feedback alone, 2,000 scores per model and size range: the anytime-valid bounds decide a 0.05 margin.
    args = ["--quality-margin", "0.05", "--report", str(tmp_path / "r.md")]
    assert otel_claude(["tune", str(traces), "-o", str(tmp_path / "p.yaml"), *args]) == 0
    rules = load_policy_text((tmp_path / "p.yaml").read_text(), "p.yaml").rules
    assert [r.task for r in rules] == ["answer"] * len(rules) and len(rules) >= 2
    assert rules[0].when is not None and rules[0].when.input_tokens_min is None
    assert rules[0].model == "claude-haiku-4-5" and rules[0].when.input_tokens_max <= 15_000
    assert rules[-1].model is None and rules[-1].when.input_tokens_max is None  # large inputs stay on sonnet
    assert "by input size" in (tmp_path / "r.md").read_text()
