"""Grading for paired evaluation: the typed answers a grader sees, its verdict, and user graders per task.

When a policy rule has an `evaluate` block, a share of the task's calls is also sent to a candidate model in the
background and the two answers are compared in-process; only the verdict leaves the process. Built-in graders run
first (normalised equality, tool calls, JSON schema); a grader registered for the task runs next; an LLM judge, when
one is configured, only for pairs nothing else settled::

    def same_label(request, incumbent, candidate):
        a, b = incumbent.text.strip().lower(), candidate.text.strip().lower()
        if not a or not b:
            return None                      # cannot tell: let the judge (if any) decide
        return otel_claude.Verdict("agree") if a == b else otel_claude.Verdict("candidate_worse")

    otel_claude.register_grader("classify", same_label)

A grader runs on a background thread (or the caller's event loop for async clients): keep it fast and free of
I/O. Its exceptions are contained (logged by type only, never with content) and count as "cannot tell".
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import semconv as sc

__all__ = ["Answer", "Grader", "ToolCall", "Verdict", "register_grader", "registered_grader", "unregister_grader"]

# What a grader may conclude ("unsettled" is what the pipeline records when nothing could conclude).
GRADED_LABELS = ("agree", "candidate_better", "candidate_worse", "tie")
_BUILT_IN = (sc.GRADER_EXACT, sc.GRADER_TOOL_CALL, sc.GRADER_JSON_SCHEMA, sc.GRADER_JUDGE)
_DEFAULT_SCORES = {"agree": 0.0, "tie": 0.0, "candidate_better": 1.0, "candidate_worse": -1.0}


@dataclass(frozen=True)
class ToolCall:
    """One tool call of an answer: the tool's name and its parsed arguments (None when they were not valid JSON)."""

    name: str
    input: Any


@dataclass(frozen=True)
class Answer:
    """One model's complete answer: its text blocks joined, its tool calls in order, and where it came from."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    stop_reason: str | None = None
    model: str | None = None
    response_id: str | None = None


@dataclass(frozen=True)
class Verdict:
    """A grader's conclusion about the candidate against the incumbent.

    `score`: the candidate's quality minus the incumbent's, in [-1, 1]; by default +1 (better), -1 (worse) or 0
    (agree, tie). A partial credit keeps the label's sign (a better candidate scores > 0).
    """

    label: str
    score: float | None = None

    def __post_init__(self) -> None:
        if self.label not in GRADED_LABELS:
            raise ValueError(f"Verdict label must be one of {', '.join(GRADED_LABELS)}, got {self.label!r}")
        score = self.score
        if score is None:
            object.__setattr__(self, "score", _DEFAULT_SCORES[self.label])
            return
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not -1.0 <= score <= 1.0:
            raise ValueError(f"Verdict score must be a number in [-1, 1], got {score!r}")
        sign_ok = {"candidate_better": score > 0, "candidate_worse": score < 0}.get(self.label, score == 0)
        if not sign_ok:
            raise ValueError(f"Verdict score {score!r} contradicts its label {self.label!r}")
        object.__setattr__(self, "score", float(score))


# A grader gets the request as sent to the incumbent (the Messages API body), the incumbent's answer and the
# candidate's, and returns a Verdict, or None when it cannot tell.
Grader = Callable[[Mapping[str, Any], Answer, Answer], "Verdict | None"]

_registry: dict[str, tuple[str, Grader]] = {}
_lock = threading.Lock()


def register_grader(task: str, grader: Grader, *, name: str | None = None) -> None:
    """Grade the pairs of `task` with `grader` (replacing an earlier one); `name` (default: the function's name)
    is recorded as the verdict's `gen_ai.evaluation.name`. Works before or after `instrument()`."""
    if not isinstance(task, str) or not task:
        raise ValueError("register_grader() needs a non-empty task name")
    if not callable(grader):
        raise TypeError("register_grader() needs a callable grader(request, incumbent, candidate)")
    label = name if name is not None else getattr(grader, "__name__", None)
    if not isinstance(label, str) or not label or label in _BUILT_IN:
        raise ValueError(f"a grader needs a name other than the built-in ones ({', '.join(_BUILT_IN)}), got {label!r}")
    with _lock:
        _registry[task] = (label, grader)


def unregister_grader(task: str) -> None:
    """Forget the grader of `task` (no error when there is none)."""
    with _lock:
        _registry.pop(task, None)


def registered_grader(task: str | None) -> tuple[str, Grader] | None:
    """(name, grader) registered for `task`, if any."""
    if task is None:
        return None
    with _lock:
        return _registry.get(task)
