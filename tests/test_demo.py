"""`otel-claude demo`: each round's policy and report are kept, evidence accumulates across rounds, a task moves to a
cheaper model with its proof printed, and the before/after table flags what got worse."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from claude_sim import CallRecord, Summary, eval_set_grader, load_scenario, modelled_latency
from claude_sim._prompts import build_request, next_request
from otel_claude.grading import Answer, ToolCall, Verdict
from otel_claude_demo.loop import comparison_table
from otel_claude_demo.loop import main as demo

SCENARIO = """
name: demo-test
description: one task a cheaper model does as well, one it does far worse
baseline: {model: claude-sonnet-4-6, max_tokens: 1024}
traffic: {calls_per_hour: 120}
tasks:
  easy:
    share: 0.8
    answer: {kind: text, position: start, form: line}
    labels: 6
    system: {tokens: 5200, variants: 1}
    input: {median: 100, sigma: 0.3, min: 20, max: 400}
    output: {default: {median: 20, sigma: 0.4, min: 6, max: 200}}
    quality: {default: 0.5, claude-sonnet-4-6: 0.95, claude-haiku-4-5: 0.95}
    errors: {correlation: 1.0, same_wrong: 1.0}  # Haiku errs exactly where Sonnet does
  chat:
    share: 0.2
    answer: {kind: text, position: end}
    labels: 6
    system: {tokens: 1500, variants: 1}
    input: {median: 300, sigma: 0.3, min: 20, max: 2000}
    output: {default: {median: 120, sigma: 0.4, min: 20, max: 2000}}
    quality: {default: 0.5, claude-sonnet-4-6: 0.95, claude-haiku-4-5: 0.4}
    session:
      turns: {median: 3, sigma: 0.2, max: 4}
      think_s: {median: 60, sigma: 0.5, max: 600}
      followup: {median: 60, sigma: 0.5, min: 10, max: 400}
"""


def test_the_eval_set_grader_scores_both_answers_against_the_label() -> None:
    scenario = load_scenario("default")
    grade = eval_set_grader(scenario, "classify")
    case = scenario.case("classify", 12)
    request = build_request(scenario, case, "claude-sonnet-4-6", 1024)
    right, wrong = f"ANSWER: {case.expected}", "ANSWER: label-999"
    assert grade(request, Answer(right), Answer(right)) == Verdict("agree")
    assert grade(request, Answer(wrong), Answer(wrong + " ")) == Verdict("tie")
    assert grade(request, Answer(right), Answer(wrong)) == Verdict("candidate_worse")
    assert grade(request, Answer(wrong), Answer(right)) == Verdict("candidate_better")
    # Another request (not one of the scenario's cases) cannot be graded.
    assert grade({"messages": [{"role": "user", "content": "hello"}]}, Answer(right), Answer(wrong)) is None

    extract = scenario.case("extract", 3)
    tool = eval_set_grader(scenario, "extract")
    body = build_request(scenario, extract, "claude-sonnet-4-6", 1024)
    good, bad = ToolCall("record_answer", {"answer": extract.expected}), ToolCall("record_answer", {"answer": "x"})
    assert tool(body, Answer("", (good,)), Answer("", (bad,))) == Verdict("candidate_worse")

    # A later turn is graded against that turn's own label (the turn is the number of user messages).
    code = next(scenario.case("code", i) for i in range(200) if scenario.case("code", i).turns >= 2)
    first = build_request(scenario, code, "claude-sonnet-4-6", 1024)
    second = next_request(scenario, "code", first, [{"type": "text", "text": "ANSWER: x"}], code.index, 2)
    label = scenario.expected("code", code.index, 2)
    assert eval_set_grader(scenario, "code")(second, Answer(f"ANSWER: {label}"), Answer("ANSWER: x")) == \
        Verdict("candidate_worse")


def _records(task: str, n: int, *, cost: float, read: int, output: int) -> list:
    return [CallRecord(task=task, model="claude-sonnet-4-6", stream=True, duration_s=0.05, ttft_s=0.01,
                       input_tokens=6000, output_tokens=output, cache_read_tokens=read, cost_usd=cost, correct=True,
                       turn=1 + i % 2) for i in range(n)]


def test_the_before_after_table_flags_what_got_worse() -> None:
    before = Summary.of(_records("fast", 20, cost=0.01, read=0, output=100)
                        + _records("slow", 20, cost=0.01, read=0, output=100), 1.0)
    # fast: half its input read from the cache, cheaper; slow: answers four times as long, dearer.
    after = Summary.of(_records("fast", 20, cost=0.005, read=3000, output=100)
                       + _records("slow", 20, cost=0.012, read=0, output=400), 1.0)
    table = comparison_table(before, after)
    rows = {line.split()[0]: line.split() for line in table.splitlines()[2:] if line.split()}
    ttft, duration = modelled_latency("claude-sonnet-4-6", 6000, 0, 100)
    cached_ttft, _ = modelled_latency("claude-sonnet-4-6", 6000, 3000, 100)
    _, long_duration = modelled_latency("claude-sonnet-4-6", 6000, 0, 400)
    assert cached_ttft < ttft and long_duration > duration * 1.1
    fast, slow = rows["fast"], rows["slow"]
    assert fast[2] == "-50%" and fast[5] == f"{ttft:.2f}->{cached_ttft:.2f}" and fast[9] == "0%->50%"
    assert not any(cell.endswith("!") for cell in fast)
    assert slow[2] == "+20%!"  # cost up
    assert slow[7] == f"{duration:.2f}->{long_duration:.2f}!"  # a latency regression, flagged
    assert slow[5] == f"{ttft:.2f}->{ttft:.2f}"  # unchanged: not flagged


def test_the_demo_keeps_each_round_and_shows_a_proven_move(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "out"
    assert demo(["--scenario", str(scenario), "--calls", "400", "--rounds", "2", "--workers", "4", "--out",
                 str(out)]) == 0
    printed = capsys.readouterr().out
    for number in (1, 2):
        for name in (f"policy-round{number}.yaml", f"report-round{number}.html", f"report-round{number}.md",
                     f"spans-round{number}.jsonl"):
            assert (out / name).stat().st_size > 0, name
    # Round 1's report recommends changes (here, caching the 5,200-token prompt): its saving is not zero.
    first = (out / "report-round1.md").read_text()
    assert re.search(r"expected to cost \$\d[\d.,]* less per 1,000 calls", first)
    assert not re.search(r"expected to cost \$0 less", first)
    # Evidence carried across rounds: the state counts both windows and holds easy's paired verdicts.
    state = json.loads((out / "tuner-state.json").read_text())
    assert state["windows"] == 2 and state["tasks"]["easy"]["evidence"]["pairs"]

    assert "Demo settings" in printed and "--quality-margin 0.05" in printed
    moved = re.search(r"^  easy -> claude-haiku-4-5 from round 2: (.*)$", printed, flags=re.M)
    assert moved is not None and re.search(r"\(\d+ paired verdicts", moved.group(1))
    assert "chat -> " not in printed  # far worse on Haiku: never moved
    table = printed.split("before (baseline) vs after (round 2")[1]
    assert "history hit" in table and re.search(r"^ALL ", table, flags=re.M)
    easy_row = next(line for line in table.splitlines() if line.startswith("easy "))
    assert "claude-haiku-4-5" in easy_row.split()[-1]  # after: easy is served by Haiku
