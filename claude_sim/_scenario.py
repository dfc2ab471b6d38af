"""A scenario's ground truth: what every request is, what its right answer is, and what each model does with it.

A *case* is one labelled example of a task, identified by an integer; for a multi-turn task it is a whole session
(conversation or agent run) and each turn is a labelled request of its own. Everything about a case (sizes, turns,
think times, which shared system prompt it uses, the right answers) is a function of (task, case, turn); what a
model does with it (output length, whether and how it errs) is a function of (seed, task, case, turn, model) and of
the request's input size. The simulator, the workload driver and the oracle all call these functions, so answers
can be graded like a labelled eval set. The file format is in `_scenario_file`.

Correlated errors (`decide`): each request has a latent difficulty z_case shared by all models and each model a
draw z_model of its own; a model answers right iff sqrt(rho) z_case + sqrt(1 - rho) z_model < Phi^-1(p), with p
its quality for the request's input size and rho the task's `errors.correlation`. Both terms are standard normal,
so the marginal accuracy is exactly p, and two models' errors have latent correlation rho (1: a harder request is
harder for all, in the same order; 0: independent). A model that errs gives the request's "attractor" wrong label
with the probability that makes two erring models agree `errors.same_wrong` of the time (solved below), and a wrong
label of its own otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

from claude_sim._rng import unit
from claude_sim._spec import Baseline, JudgeSpec, Task

__all__ = ["ANSWER_PREFIX", "ANSWER_TOKENS", "Case", "Decision", "Scenario", "answer_line", "label_name",
           "read_answer_line"]

ANSWER_PREFIX = "ANSWER: "
# "ANSWER: label-NNN" plus its newline, padded to whole tokens: no answer can be shorter than this.
ANSWER_TOKENS = 5
DEFAULT_CALLS_PER_HOUR = 3600.0
_NORMAL = NormalDist()


@dataclass(frozen=True)
class Case:
    task: str
    index: int
    input_tokens: int  # of the first user message
    system_variant: int
    expected: str  # the first turn's right answer
    turns: int = 1


@dataclass(frozen=True)
class Decision:
    """What one model does with one request, before max_tokens is applied."""

    output_tokens: int
    correct: bool
    answer: str


def label_name(index: int) -> str:
    return f"label-{index:03d}"


def answer_line(answer: str) -> str:
    return f"{ANSWER_PREFIX}{answer}"


def read_answer_line(text: str) -> str | None:
    """The answer of the first `ANSWER: x` line of a text, if any."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(ANSWER_PREFIX):
            return line[len(ANSWER_PREFIX):].strip()
    return None


def _key(task: str, index: int, turn: int) -> tuple[object, ...]:
    # The first turn keeps the single-turn keys, so a task that gains sessions keeps its first requests.
    return (task, index) if turn == 1 else (task, index, turn)


def attractor_probability(labels: int, same_wrong: float) -> float:
    """The chance s of taking the common wrong label such that two erring models agree `same_wrong` of the time.

    With k = labels - 2 other wrong labels taken uniformly, two erring models agree with probability
    s^2 + (1 - s)^2 / k; the lowest it can be is 1 / (labels - 1) (uniform wrong answers), reached at that s.
    """
    k = labels - 2
    if k <= 0:
        return 1.0
    target = max(same_wrong, 1.0 / (k + 1))
    a, b, c = 1.0 + 1.0 / k, -2.0 / k, 1.0 / k - target
    return min(1.0, (-b + math.sqrt(max(0.0, b * b - 4 * a * c))) / (2 * a))


@dataclass(frozen=True, eq=False)  # identity equality: the oracle memoises per scenario object
class Scenario:
    name: str
    description: str
    baseline: Baseline
    tasks: dict[str, Task]
    calls_per_hour: float = DEFAULT_CALLS_PER_HOUR
    judge: JudgeSpec = field(default_factory=JudgeSpec)
    source: str = "<memory>"
    # Cases are pure functions of (task, index) asked for again and again (plan, driver, simulator, oracle).
    _cases: dict[tuple[str, int], Case] = field(default_factory=dict, repr=False)

    # --- traffic -------------------------------------------------------------------------------------------------

    def call_rate(self, task: str) -> float:
        """Mean calls per scenario second of a task: its share of the scenario's calls per hour."""
        total = sum(spec.share for spec in self.tasks.values())
        return self.calls_per_hour / 3600.0 * self.tasks[task].share / total

    # --- cases ---------------------------------------------------------------------------------------------------

    def case(self, task: str, index: int) -> Case:
        found = self._cases.get((task, index))
        if found is not None:
            return found
        spec = self.tasks[task]
        turns = 1 if spec.session is None else spec.session.turns.quantile(unit("turns", task, index))
        case = Case(
            task=task,
            index=index,
            input_tokens=spec.input.quantile(unit("input", task, index)),
            system_variant=int(unit("variant", task, index) * spec.system_variants),
            expected=self.expected(task, index),
            turns=turns,
        )
        if len(self._cases) > 200_000:
            self._cases.clear()  # bounded: a long-lived simulator sees ever new cases
        self._cases[(task, index)] = case
        return case

    def expected(self, task: str, index: int, turn: int = 1) -> str:
        return label_name(self._label(task, index, turn))

    def _label(self, task: str, index: int, turn: int) -> int:
        return int(unit("label", *_key(task, index, turn)) * self.tasks[task].labels)

    def graded(self, task: str, case: Case, turn: int) -> bool:
        """Whether a turn's answer is checked: every turn of a chat, only the last step of an agent run."""
        session = self.tasks[task].session
        return session is None or not session.agent or turn == case.turns

    def user_tokens(self, task: str, index: int, turn: int) -> int:
        """Tokens of a turn's new user message (for an agent, of a text message when there is no tool result)."""
        spec = self.tasks[task]
        if turn == 1 or spec.session is None:
            return spec.input.quantile(unit("input", task, index))
        sizes = spec.session.followup or spec.input
        return sizes.quantile(unit("input", task, index, turn))

    def tool_result_tokens(self, task: str, index: int, turn: int) -> int:
        session = self.tasks[task].session
        assert session is not None
        return session.tool_result.quantile(unit("tool_result", task, index, turn))

    def think(self, task: str, index: int, turn: int) -> float:
        """Scenario seconds from the start of turn - 1 to the start of `turn` (turn >= 2)."""
        session = self.tasks[task].session
        assert session is not None
        return session.think.quantile(unit("think", task, index, turn))

    # --- what a model does ---------------------------------------------------------------------------------------

    def decide(self, seed: int, task: str, index: int, model: str, input_tokens: int, turn: int = 1) -> Decision:
        """`model` is the canonical catalog ID; `input_tokens` the request's whole input (quality and length may
        depend on it). Output lengths use common random numbers: a request one model answers at length is long
        for all."""
        spec = self.tasks[task]
        key = _key(task, index, turn)
        expected = self._label(task, index, turn)
        p = spec.quality_for(model, input_tokens)
        if p <= 0.0 or p >= 1.0:
            right = p >= 1.0
        else:
            rho = spec.errors.correlation
            latent = (math.sqrt(rho) * _NORMAL.inv_cdf(unit(seed, "difficulty", *key))
                      + math.sqrt(1.0 - rho) * _NORMAL.inv_cdf(unit(seed, "skill", *key, model)))
            right = latent < _NORMAL.inv_cdf(p)
        answer = expected if right or spec.labels < 2 else self._wrong(seed, key, model, expected, spec)
        length = max(ANSWER_TOKENS, spec.output_for(model, input_tokens).quantile(unit(seed, "length", *key)))
        return Decision(output_tokens=length, correct=answer == expected, answer=label_name(answer))

    @staticmethod
    def _wrong(seed: int, key: tuple[object, ...], model: str, expected: int, spec: Task) -> int:
        labels = spec.labels
        attractor = 1 + int(unit(seed, "attractor", *key) * (labels - 1))  # an offset from the right label
        if unit(seed, "pick", *key, model) < attractor_probability(labels, spec.errors.same_wrong):
            offset = attractor
        else:
            other = 1 + int(unit(seed, "wrong", *key, model) * (labels - 2))
            offset = other if other < attractor else other + 1
        return (expected + offset) % labels
