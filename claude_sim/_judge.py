"""The simulator as an LLM judge: a request comparing two answers gets a verdict of scenario-set quality.

A judge request is any request whose last user message contains `<answer_a>...</answer_a>` and
`<answer_b>...</answer_b>`. Each answer's label is read the way a grader reads it (an `ANSWER: label-NNN` line, or a
JSON `"answer": "label-NNN"` field of a serialised tool call). The truth, from the case's right label (the request's
`x-sim-task` / `x-sim-case` / `x-sim-turn`): the one right answer when exactly one is right, TIE otherwise (both right,
both wrong, or no case to check against). The verdict:

- with probability `tie_rate` the judge abstains: TIE;
- otherwise it gives the truth with probability `accuracy`, except that it errs (1 + position_bias) times as often
  when the better answer is B and (1 - position_bias) times as often when it is A (the first-position preference
  judges are known for); an error picks the other answer, or for a true TIE, A or B with the same bias.

The reply's first line is `VERDICT: A`, `VERDICT: B` or `VERDICT: TIE`. Deterministic per (seed, request).
"""

from __future__ import annotations

import re
from typing import Any

from claude_sim._rng import unit
from claude_sim._scenario import read_answer_line
from claude_sim._spec import JudgeSpec

__all__ = ["judge_answers", "label_in", "truth", "verdict"]

_A = re.compile(r"<answer_a>(.*?)</answer_a>", re.DOTALL)
_B = re.compile(r"<answer_b>(.*?)</answer_b>", re.DOTALL)
_TOOL_ANSWER = re.compile(r'"answer"\s*:\s*"([^"]*)"')


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    texts = [part.get("text", "") for part in parts if isinstance(part, dict) and part.get("type") == "text"]
    return "\n".join(map(str, texts))


def judge_answers(body: dict[str, Any]) -> tuple[str, str] | None:
    """The two answers a judge request compares, or None when the request is not one."""
    users = [message for message in body.get("messages") or [] if message.get("role") == "user"]
    if not users:
        return None
    text = _text_of(users[-1].get("content"))
    first, second = _A.search(text), _B.search(text)
    if first is None or second is None:
        return None
    return first.group(1), second.group(1)


def label_in(answer: str) -> str | None:
    line = read_answer_line(answer)
    if line is not None:
        return line
    found = _TOOL_ANSWER.search(answer)
    return found.group(1) if found else None


def truth(first: str, second: str, expected: str | None) -> str:
    if expected is None:
        return "TIE"
    a_right, b_right = label_in(first) == expected, label_in(second) == expected
    if a_right != b_right:
        return "A" if a_right else "B"
    return "TIE"


def verdict(spec: JudgeSpec, right: str, seed: int, request_key: str) -> str:
    if unit(seed, request_key, "judge-tie") < spec.tie_rate:
        return "TIE"
    error = 1.0 - spec.accuracy
    if right == "A":
        error *= 1.0 - spec.position_bias
    elif right == "B":
        error *= 1.0 + spec.position_bias
    if unit(seed, request_key, "judge-right") >= error:
        return right
    if right != "TIE":
        return "B" if right == "A" else "A"
    return "A" if unit(seed, request_key, "judge-side") < (1.0 + spec.position_bias) / 2 else "B"
