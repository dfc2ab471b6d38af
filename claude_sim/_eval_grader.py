"""A paired-evaluation grader for a scenario's requests, written the way a service with a labelled eval set writes
one: it knows each request's right answer and scores both models' answers against it.

    for task in scenario.tasks:
        otel_claude.register_grader(task, eval_set_grader(scenario, task))

A request names its case in its first user message (`case N: ...`, see `_prompts`) and its turn is the number of
user messages; the right label is the scenario's ground truth for that case and turn. Each answer's label is read
the way the driver grades a reply (`_jobs.answer_label`): the answer tool's `answer` argument, or the first
`ANSWER: label-NNN` line. Unlike the driver's default `same_answer`, which only sees that two answers agree, this
one knows which is right, so it settles every pair.
Both right: `agree`; both wrong: `tie`; otherwise the right one wins. A request that is not a graded turn of one of
the scenario's cases (an agent's intermediate step, a request from elsewhere) gets None: cannot tell.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from claude_sim._jobs import answer_label
from claude_sim._scenario import Scenario
from otel_claude.grading import Answer, Verdict

__all__ = ["eval_set_grader"]

_CASE = re.compile(r"case (\d+)\b")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    blocks = content if isinstance(content, list) else []
    return "".join(str(b.get("text", "")) for b in blocks if isinstance(b, Mapping) and b.get("type") == "text")


def eval_set_grader(scenario: Scenario, task: str) -> Callable[[Mapping[str, Any], Answer, Answer], Verdict | None]:
    """The grader of `task`'s paired answers against the scenario's labels."""

    def grade(request: Mapping[str, Any], incumbent: Answer, candidate: Answer) -> Verdict | None:
        users = [m for m in request.get("messages") or [] if isinstance(m, Mapping) and m.get("role") == "user"]
        found = _CASE.match(_text(users[0].get("content")).lstrip()) if users else None
        if found is None:
            return None
        index, turn = int(found.group(1)), len(users)
        if not scenario.graded(task, scenario.case(task, index), turn):
            return None
        expected = scenario.expected(task, index, turn)
        right = (answer_label(incumbent) == expected, answer_label(candidate) == expected)
        if right[0] == right[1]:
            return Verdict("agree" if right[0] else "tie")
        return Verdict("candidate_better" if right[1] else "candidate_worse")

    return grade
