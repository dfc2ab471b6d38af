"""The simulator as an LLM judge: verdicts with the scenario's accuracy, position bias and tie rate."""

from __future__ import annotations

import math

import anthropic
import pytest

from claude_sim import SimServer
from claude_sim._scenario import answer_line, label_name
from claude_sim._scenario_file import parse_scenario

SCENARIO = """
baseline: {model: claude-sonnet-4-6, max_tokens: 1000}
judge: {accuracy: 0.8, position_bias: 0.5, tie_rate: 0.1}
tasks:
  qa:
    share: 1
    labels: 10
    input: {median: 100}
    output: {default: {median: 40}}
    quality: {default: 0.8}
"""
N = 250


@pytest.fixture(scope="module")
def scenario():
    return parse_scenario(SCENARIO, "judge.yaml")


def judge(client: anthropic.Anthropic, case: int, first: str, second: str, salt: int) -> str:
    prompt = (f"Question {salt}: which answer is right?\n<answer_a>\nSome words.\n{answer_line(first)}\n</answer_a>\n"
              f"<answer_b>\n{answer_line(second)}\n</answer_b>")
    reply = client.messages.create(model="claude-haiku-4-5", max_tokens=64,
                                   messages=[{"role": "user", "content": prompt}],
                                   extra_headers={"x-sim-task": "qa", "x-sim-case": str(case)})
    first_line = reply.content[0].text.splitlines()[0]
    assert first_line.startswith("VERDICT: ")
    return first_line.removeprefix("VERDICT: ")


def wrong(expected: str) -> str:
    return label_name((int(expected.removeprefix("label-")) + 1) % 10)


def test_verdicts_follow_accuracy_position_bias_and_tie_rate(scenario) -> None:
    with SimServer(scenario=scenario, seed=3) as sim:
        client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=0)
        a_better, b_better, equal = [], [], []
        for case in range(N):
            right = scenario.expected("qa", case)
            a_better.append(judge(client, case, right, wrong(right), 0))
            b_better.append(judge(client, case, wrong(right), right, 1))
            equal.append(judge(client, case, right, right, 2))
        assert judge(client, 5, wrong("label-001"), "label-001", 1) == judge(client, 5, wrong("label-001"),
                                                                            "label-001", 1)  # deterministic
        untagged = client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=[{
            "role": "user", "content": "<answer_a>ANSWER: x</answer_a><answer_b>ANSWER: y</answer_b>"}])
        assert untagged.content[0].text.startswith("VERDICT: ")

    def share(verdicts: list[str], value: str) -> float:
        return sum(v == value for v in verdicts) / len(verdicts)

    def close(measured: float, expected: float) -> bool:
        return abs(measured - expected) < 4 * math.sqrt(expected * (1 - expected) / N) + 1e-9

    ties = (share(a_better, "TIE") + share(b_better, "TIE")) / 2
    assert close(ties, 0.1)
    # Errors are (1 - accuracy)(1 -+ bias) of the verdicts that are not ties: 0.1 when A is right, 0.3 when B is.
    assert close(share(a_better, "B") / 0.9, 0.1) and close(share(b_better, "A") / 0.9, 0.3)
    accuracy = (share(a_better, "A") + share(b_better, "B")) / 2 / 0.9
    assert close(accuracy, 0.8)
    # Two right answers: TIE unless it errs, and then it prefers the first position.
    assert close(share(equal, "TIE"), 0.1 + 0.9 * 0.8)
    assert share(equal, "A") > share(equal, "B")
