"""A run's calls as the driver sends them: the scenario's plan, plus per call streaming, grading and feedback.

Feedback follows the task's `feedback` spec: a graded call is scored with probability `share`, `delay` scenario
seconds after it started, and the score says the opposite of the truth with probability `noise`. Binary scores are
1/0 (labels thumbs_up/thumbs_down); graded ones are a 1-5 rating r as (r - 1) / 4, 4-5 for an answer the user
takes as right and 1-2 for one taken as wrong (label rating_r). Every draw is keyed by (seed, call number).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from claude_sim._engine import CASE_HEADER, TASK_HEADER, TURN_HEADER
from claude_sim._plan import plan_calls
from claude_sim._prompts import build_request
from claude_sim._rng import unit
from claude_sim._scenario import Scenario, read_answer_line

__all__ = ["FeedbackDraw", "Job", "answer_in", "grade", "plan_jobs"]


@dataclass(frozen=True)
class FeedbackDraw:
    """A user's score for one call, before knowing whether the call was right."""

    delay_s: float
    kind: str
    flipped: bool
    u_rating: float

    def score(self, correct: bool) -> tuple[float, str]:
        """(score, label) for an answer that was `correct`."""
        seen_right = correct != self.flipped
        if self.kind == "binary":
            return (1.0, "thumbs_up") if seen_right else (0.0, "thumbs_down")
        rating = (4 if seen_right else 1) + (self.u_rating < 0.5)
        return (rating - 1) / 4, f"rating_{rating}"


@dataclass(frozen=True)
class Job:
    number: int
    task: str
    case: int
    turn: int
    turns: int
    session: int  # the session's number within its task
    at: float  # planned scenario time of the call
    stream: bool
    expected: str | None  # the right answer; None when this turn is not graded (an agent's intermediate step)
    feedback: FeedbackDraw | None  # set when a user scores this call
    body: dict[str, Any] | None  # the first turn's request; later turns are built from the conversation

    @property
    def headers(self) -> dict[str, str]:
        return {TASK_HEADER: self.task, CASE_HEADER: str(self.case), TURN_HEADER: str(self.turn)}


def plan_jobs(scenario: Scenario, calls: int, seed: int, stream_share: float, start: float = 0.0) -> list[Job]:
    """The run's calls, fixed by the seed, in time order from scenario time `start`."""
    jobs = []
    baseline = scenario.baseline
    for number, call in enumerate(plan_calls(scenario, calls, seed, start)):
        spec = scenario.tasks[call.task]
        case = scenario.case(call.task, call.case)
        graded = scenario.graded(call.task, case, call.turn)
        feedback = None
        if graded and unit(seed, "scored", number) < spec.feedback.share:
            feedback = FeedbackDraw(delay_s=spec.feedback.delay.quantile(unit(seed, "delay", number)),
                                    kind=spec.feedback.kind, flipped=unit(seed, "noise", number) < spec.feedback.noise,
                                    u_rating=unit(seed, "rating", number))
        jobs.append(Job(
            number=number, task=call.task, case=call.case, turn=call.turn, turns=call.turns, session=call.session,
            at=call.at, stream=unit(seed, "stream", number) < stream_share,
            expected=scenario.expected(call.task, call.case, call.turn) if graded else None, feedback=feedback,
            body=build_request(scenario, case, baseline.model, baseline.max_tokens) if call.turn == 1 else None,
        ))
    return jobs


def _field(block: Any, name: str) -> Any:
    return block.get(name) if isinstance(block, dict) else getattr(block, name, None)


def answer_in(content: Iterable[Any]) -> str | None:
    """The answer a reply gives: the answer tool's `answer` argument, or the first `ANSWER: x` line of a text."""
    for block in content:
        kind, tool_input = _field(block, "type"), _field(block, "input")
        if kind == "tool_use" and isinstance(tool_input, dict) and "answer" in tool_input:
            return str(tool_input["answer"])
        if kind == "text":
            found = read_answer_line(str(_field(block, "text")))
            if found is not None:
                return found
    return None


def answer_label(reply: Any) -> str | None:
    """The answer an `otel_claude.Answer` gives: the answer tool's argument, or the `ANSWER:` line of its text."""
    for call in reply.tool_calls:
        if isinstance(call.input, dict) and "answer" in call.input:
            return str(call.input["answer"])
    return read_answer_line(reply.text)


def same_answer(request: Any, incumbent: Any, candidate: Any) -> Any:
    """A user grader for paired evaluation (`otel_claude.register_grader`), as a service with checkable answers
    writes one: two answers that give the same answer (the `ANSWER:` line of a prose reply, or the answer tool's
    argument) agree, whatever their wording. It cannot tell which of two different answers is right (it does not
    know the expected one): those it leaves to the judge, if one is configured."""
    import otel_claude

    mine, theirs = answer_label(incumbent), answer_label(candidate)
    return otel_claude.Verdict("agree") if mine is not None and mine == theirs else None


def grade(message: Any, expected: str | None) -> bool | None:
    """Whether a reply (an SDK message) gives the expected answer; None when the turn is not graded."""
    if expected is None:
        return None
    return answer_in(message.content) == expected
