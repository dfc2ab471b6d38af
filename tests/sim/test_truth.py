"""Ground truth across models: correlated errors, shared wrong answers, size-dependent quality and length, and
answers a grader can compare without the request giving the right one away."""

from __future__ import annotations

import json
import math
import statistics
from statistics import NormalDist

import anthropic
import pytest

from claude_sim import SimServer
from claude_sim._jobs import answer_in
from claude_sim._scenario import attractor_probability
from claude_sim._scenario_file import parse_scenario

SONNET, HAIKU = "claude-sonnet-4-6", "claude-haiku-4-5"
SCENARIO = """
baseline: {model: claude-sonnet-4-6, max_tokens: 2000}
tasks:
  qa:
    share: 1
    labels: 12
    input: {median: 300, sigma: 1.2, min: 20, max: 20000}
    output:
      default: {median: 60, sigma: 0.3}
      claude-haiku-4-5: {0: {median: 60, sigma: 0.3}, 2000: {median: 200, sigma: 0.3}}
    quality: {default: 0.5, claude-sonnet-4-6: 0.8, claude-haiku-4-5: {0: 0.7, 2000: 0.4}}
    errors: {correlation: 0.7, same_wrong: 0.6}
"""
_NORMAL = NormalDist()


@pytest.fixture(scope="module")
def scenario():
    return parse_scenario(SCENARIO, "truth.yaml")


def both_right(p: float, q: float, rho: float) -> float:
    """P(both right) under the scenario's Gaussian copula, by quadrature over the shared difficulty."""
    a, b, steps = _NORMAL.inv_cdf(p), _NORMAL.inv_cdf(q), 4000
    total = 0.0
    for i in range(steps):
        z = -8 + 16 * (i + 0.5) / steps
        scale = math.sqrt(1 - rho)
        total += _NORMAL.pdf(z) * _NORMAL.cdf((a - math.sqrt(rho) * z) / scale) \
            * _NORMAL.cdf((b - math.sqrt(rho) * z) / scale) * 16 / steps
    return total


def test_errors_are_correlated_as_stated_and_marginals_exact(scenario) -> None:
    n = 40_000
    strong = [scenario.decide(0, "qa", i, SONNET, 500) for i in range(n)]
    weak = [scenario.decide(0, "qa", i, HAIKU, 500) for i in range(n)]
    assert abs(sum(d.correct for d in strong) / n - 0.8) < 0.01
    assert abs(sum(d.correct for d in weak) / n - 0.7) < 0.01
    joint = sum(s.correct and w.correct for s, w in zip(strong, weak, strict=True)) / n
    assert abs(joint - both_right(0.8, 0.7, 0.7)) < 0.01
    assert joint > 0.8 * 0.7 + 0.05  # far from independent errors
    both_wrong = [(s.answer, w.answer) for s, w in zip(strong, weak, strict=True) if not s.correct and not w.correct]
    same = sum(a == b for a, b in both_wrong) / len(both_wrong)
    assert abs(same - 0.6) < 0.03


def test_attractor_probability_solves_for_the_agreement_rate() -> None:
    for labels, agree in ((12, 0.6), (4, 0.9), (30, 0.2)):
        s = attractor_probability(labels, agree)
        assert s * s + (1 - s) ** 2 / (labels - 2) == pytest.approx(agree)
    assert attractor_probability(12, 0.0) == pytest.approx(1 / 11)  # uniform wrong answers: the least agreement
    assert attractor_probability(2, 0.1) == 1.0  # one wrong label only


def _ask(client, model: str, case: int, tokens: int) -> anthropic.types.Message:
    return client.messages.create(model=model, max_tokens=2000,
                                  messages=[{"role": "user", "content": "word " * (tokens - 4)}],
                                  extra_headers={"x-sim-task": "qa", "x-sim-case": str(case)})


def test_two_models_err_together_through_the_api(scenario) -> None:
    with SimServer(scenario=scenario, seed=9) as sim:
        client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=0)
        pairs = [(_ask(client, SONNET, case, 300), _ask(client, HAIKU, case, 300)) for case in range(300)]
    right = [(answer_in(s.content) == scenario.expected("qa", case),
              answer_in(h.content) == scenario.expected("qa", case)) for case, (s, h) in enumerate(pairs)]
    x, y = [float(a) for a, _ in right], [float(b) for _, b in right]
    phi = statistics.correlation(x, y)
    assert phi > 0.15  # independent errors: 0 +- 0.06 at this size; the copula with rho 0.7: about 0.33
    expected = both_right(0.8, 0.7, 0.7)
    joint = sum(a and b for a, b in right) / len(right)
    assert abs(joint - expected) < 4 * math.sqrt(expected * (1 - expected) / len(right))


def test_quality_and_length_depend_on_input_size_through_the_api(scenario) -> None:
    outcomes: dict[str, list[tuple[bool, int]]] = {"small": [], "large": []}
    with SimServer(scenario=scenario, seed=4) as sim:
        client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=0)
        for case in range(200):
            for size, tokens in (("small", 500), ("large", 3000)):
                reply = _ask(client, HAIKU, case, tokens)
                outcomes[size].append((answer_in(reply.content) == scenario.expected("qa", case),
                                       reply.usage.output_tokens))
    for size, quality, median in (("small", 0.7, 60), ("large", 0.4, 200)):
        share = sum(ok for ok, _ in outcomes[size]) / 200
        assert abs(share - quality) < 4 * math.sqrt(quality * (1 - quality) / 200), size
        assert abs(statistics.median(tokens for _, tokens in outcomes[size]) - median) < 0.15 * median, size


def test_answers_are_comparable_but_do_not_leak_the_label(scenario) -> None:
    body = {"model": SONNET, "max_tokens": 2000, "messages": [{"role": "user", "content": "word " * 200}]}
    with SimServer(scenario=scenario, seed=1, record=True) as sim:
        client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=0)
        found = 0
        for case in range(60):
            expected = scenario.expected("qa", case)
            first = client.messages.create(**body, extra_headers={"x-sim-task": "qa", "x-sim-case": str(case)})
            other = client.messages.create(**{**body, "model": "claude-opus-4-6"},
                                           extra_headers={"x-sim-task": "qa", "x-sim-case": str(case)})
            if answer_in(first.content) == answer_in(other.content) == expected:
                found += 1
                assert first.content[0].text != other.content[0].text  # same answer, each model's own words
        assert found > 20
        assert not any(scenario.expected("qa", case) in json.dumps(request["json"]) for case in range(60)
                       for request in sim.received)


def test_short_answers_are_the_same_text_for_two_right_models() -> None:
    short = parse_scenario(SCENARIO.replace("  qa:\n", "  qa:\n    answer: {kind: text, form: line}\n"), "short.yaml")
    body = {"model": SONNET, "max_tokens": 2000, "messages": [{"role": "user", "content": "word " * 200}]}
    with SimServer(scenario=short, seed=1) as sim:
        client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=0)
        both_right = 0
        for case in range(40):
            headers = {"x-sim-task": "qa", "x-sim-case": str(case)}
            first = client.messages.create(**body, extra_headers=headers)
            other = client.messages.create(**{**body, "model": "claude-opus-4-6"}, extra_headers=headers)
            assert first.content[0].text.strip() == f"ANSWER: {answer_in(first.content)}"
            assert first.usage.output_tokens >= 5  # the rest of the output is unseen reasoning
            if answer_in(first.content) == answer_in(other.content) == short.expected("qa", case):
                both_right += 1
                assert first.content[0].text == other.content[0].text
        assert both_right > 15
