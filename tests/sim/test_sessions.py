"""Conversations and agent loops through the driver: every turn resends the whole history, the prefix grows turn
by turn, and a moving breakpoint on the last message reads what the turn before wrote."""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict

import pytest

from claude_sim import ScenarioClock, SimServer
from claude_sim._engine import CASE_HEADER, TASK_HEADER, TURN_HEADER
from claude_sim._scenario_file import parse_scenario
from claude_sim._tokens import MESSAGE_OVERHEAD, text_tokens
from claude_sim.workload import run_workload

SCENARIO = """
baseline: {model: claude-sonnet-4-6, max_tokens: 2000}
traffic: {calls_per_hour: 300}
tasks:
  chat:
    share: 0.5
    labels: 20
    system: {tokens: 1500}
    input: {median: 80, sigma: 0.5}
    output: {default: {median: 150, sigma: 0.5, max: 1500}}
    quality: {default: 0.8}
    session: {turns: {median: 4, sigma: 0.5, max: 8}, think_s: {median: 30, sigma: 0.5, max: 200},
              followup: {median: 30, sigma: 0.5}}
  agent:
    share: 0.5
    answer: {kind: tool}
    labels: 20
    system: {tokens: 1500}
    tools: {count: 3, tokens: 900}
    input: {median: 200, sigma: 0.5}
    output: {default: {median: 80, sigma: 0.4}}
    quality: {default: 0.8}
    session: {turns: {median: 4, sigma: 0.4, max: 8}, think_s: {median: 3, sigma: 0.5, max: 60}, agent: true,
              tool_result: {median: 300, sigma: 0.5}}
"""


@pytest.fixture(scope="module")
def scenario():
    return parse_scenario(SCENARIO, "sessions.yaml")


@pytest.fixture(scope="module")
def run(scenario):
    clock = ScenarioClock(0, fast_forward=True)
    with SimServer(scenario=scenario, seed=6, clock=clock, record=True) as sim:
        summary = run_workload(sim.base_url, scenario, calls=160, workers=4, seed=2, clock=clock,
                               conversation_cache="5m", instrument=False)
        yield summary, list(sim.received)


def _sessions(received: list[dict]) -> dict[tuple[str, str], dict[int, dict]]:
    sessions: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
    for request in received:
        headers = request["headers"]
        if request["path"] == "/v1/messages":
            sessions[(headers[TASK_HEADER], headers[CASE_HEADER])][int(headers[TURN_HEADER])] = request["json"]
    return sessions


def _without_markers(content):
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    return [{k: v for k, v in block.items() if k != "cache_control"} for block in blocks]


def test_each_turn_resends_the_whole_conversation(run) -> None:
    _summary, received = run
    sessions = _sessions(received)
    long = [turns for turns in sessions.values() if len(turns) >= 3]
    assert len(long) > 5
    for turns in long:
        for turn in range(2, len(turns) + 1):
            before, now = turns[turn - 1]["messages"], turns[turn]["messages"]
            assert len(now) == len(before) + 2 and now[-2]["role"] == "assistant"
            assert [_without_markers(m["content"]) for m in now[: len(before)]] == \
                [_without_markers(m["content"]) for m in before]
    chats = [turns for (task, _), turns in sessions.items() if task == "chat"]
    followups = [text_tokens(turns[turn]["messages"][-1]["content"][-1]["text"]) + MESSAGE_OVERHEAD
                 for turns in chats for turn in range(2, len(turns) + 1)]
    assert abs(statistics.median(followups) - 30) < 5  # session.followup, not the first message's size
    # Only the last block carries the moving breakpoint.
    last = long[0][len(long[0])]["messages"]
    assert "cache_control" in last[-1]["content"][-1]
    assert all("cache_control" not in block for m in last[:-1] if isinstance(m["content"], list)
               for block in m["content"])


def test_agent_steps_call_tools_and_get_results_back(run, scenario) -> None:
    summary, received = run
    agents = [turns for (task, _), turns in _sessions(received).items() if task == "agent" and len(turns) >= 2]
    assert agents
    for turns in agents:
        for turn in range(2, len(turns) + 1):
            assistant, results = turns[turn]["messages"][-2:]
            calls = [block for block in assistant["content"] if block["type"] == "tool_use"]
            answers = [block for block in _without_markers(results["content"]) if block["type"] == "tool_result"]
            assert [c["id"] for c in calls] == [r["tool_use_id"] for r in answers] and calls
            assert calls[0]["name"] != "record_answer"  # lookups until the last step
    results = [block for turns in agents for turn in range(2, len(turns) + 1)
               for block in _without_markers(turns[turn]["messages"][-1]["content"])]
    assert abs(statistics.median(text_tokens(r["content"]) for r in results) - 300) < 40  # session.tool_result
    graded = [r for r in summary.records if r.task == "agent" and r.correct is not None]
    ungraded = [r for r in summary.records if r.task == "agent" and r.correct is None]
    assert graded and ungraded  # only a run's final answer is graded


def test_the_prefix_grows_and_the_previous_turn_is_read_from_cache(run) -> None:
    summary, _ = run
    by_turn = defaultdict(list)
    for record in summary.records:
        if record.task == "chat":
            by_turn[record.turn].append(record)
    means = [sum(r.input_tokens for r in by_turn[t]) / len(by_turn[t]) for t in sorted(by_turn) if by_turn[t]]
    assert all(b > a for a, b in itertools.pairwise(means)) and len(means) >= 3
    later = [r for r in summary.records if r.turn > 1]
    # With think times far below 5 minutes, a later turn reads everything but its newest messages.
    assert sum(r.cache_read_tokens for r in later) > 0.8 * sum(r.input_tokens for r in later)
