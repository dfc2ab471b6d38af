"""The LLM judge's protocol: the request that shows it both answers, the parse of its reply, and the swap rule.

A judge prefers the answer it reads first (position bias), so it is asked twice with the answers swapped and a win
counts only when both orders agree; any other pair of readable replies is a tie. A reply that does not start with a
`VERDICT:` line leaves the pair unsettled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from . import semconv as sc
from ._answers import answer_of
from ._graders import Graded
from .grading import Answer
from .policy import Judge

__all__ = ["DEFAULT_RUBRIC", "JUDGE_MAX_TOKENS", "combine", "judge_request", "parse_verdict"]

DEFAULT_RUBRIC = (
    "Compare two answers to the same request. Judge which one better does what the request asks: correct, complete, "
    "following its instructions and format. Length and style count only where the request asks for them."
)
JUDGE_MAX_TOKENS = 512
# The request as the judge sees it: its end (the latest turn) is kept. About 2,000 tokens: the judge's two reads of
# the context are most of what an evaluation costs on prose tasks, and the evaluation budget is a few percent.
_MAX_CONTEXT_CHARS = 8_000
_VERDICT = re.compile(r"^\s*\**\s*VERDICT\s*:\s*\**\s*(A|B|TIE)\b", re.IGNORECASE)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    if isinstance(content, list):
        for block in content:
            if not isinstance(block, Mapping):
                continue
            if isinstance(block.get("text"), str):
                parts.append(block["text"])
            elif block.get("type") == "tool_use":
                parts.append(f"[tool call {block.get('name')}: {json.dumps(block.get('input'), default=str)}]")
            elif block.get("type") == "tool_result":
                parts.append(f"[tool result: {_text_of(block.get('content'))}]")
    return "\n".join(parts)


def _request_text(request: Mapping[str, Any]) -> str:
    lines: list[str] = []
    system = _text_of(request.get("system"))
    if system:
        lines.append(f"[system]\n{system}")
    messages = request.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if isinstance(message, Mapping):
            lines.append(f"[{message.get('role')}]\n{_text_of(message.get('content'))}")
    text = "\n\n".join(lines)
    return text if len(text) <= _MAX_CONTEXT_CHARS else "..." + text[-_MAX_CONTEXT_CHARS:]


def _answer_text(answer: Answer) -> str:
    calls = [f"[tool call {c.name}: {json.dumps(c.input, default=str)}]" for c in answer.tool_calls]
    return "\n".join([answer.text, *calls]).strip()


def judge_request(judge: Judge, request: Mapping[str, Any], answer_a: Answer, answer_b: Answer) -> dict[str, Any]:
    """The Messages API body asking `judge` to compare answer A with answer B."""
    prompt = (
        f"{judge.rubric or DEFAULT_RUBRIC}\n\n"
        f"<request>\n{_request_text(request)}\n</request>\n\n"
        f"<answer_a>\n{_answer_text(answer_a)}\n</answer_a>\n\n"
        f"<answer_b>\n{_answer_text(answer_b)}\n</answer_b>\n\n"
        "Start your reply with exactly one line `VERDICT: A`, `VERDICT: B` or `VERDICT: TIE`, then give your reasons."
    )
    # No sampling parameters: the API version anthropic 2.x sends (2026-10-21) rejects temperature, top_p and top_k
    # with a 400; the swapped second ask, not a temperature, is what guards against a judge's whims.
    return {"model": judge.model, "max_tokens": JUDGE_MAX_TOKENS, "messages": [{"role": "user", "content": prompt}]}


def parse_verdict(reply: Any) -> str | None:
    """`A`, `B` or `TIE` from the first non-empty line of the judge's reply; None for anything else."""
    try:
        text = answer_of(reply).text
    except Exception:
        return None
    for line in text.splitlines():
        if line.strip():
            found = _VERDICT.match(line)
            return found.group(1).upper() if found else None
    return None


def combine(incumbent_first: str | None, candidate_first: str | None) -> Graded:
    """The verdict from both orders: `incumbent_first` showed the incumbent as A, `candidate_first` as B. A tie in
    the first order is a tie, whatever the second would say (it is then not asked)."""
    if incumbent_first == "TIE":
        return Graded(sc.GRADER_JUDGE, "tie", 0.0)
    if incumbent_first is None or candidate_first is None:
        return Graded(sc.GRADER_JUDGE, "unsettled", 0.0)
    candidate_won = (incumbent_first == "B", candidate_first == "A")
    incumbent_won = (incumbent_first == "A", candidate_first == "B")
    if all(candidate_won):
        return Graded(sc.GRADER_JUDGE, "candidate_better", 1.0)
    if all(incumbent_won):
        return Graded(sc.GRADER_JUDGE, "candidate_worse", -1.0)
    return Graded(sc.GRADER_JUDGE, "tie", 0.0)
