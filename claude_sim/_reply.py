"""What the simulated model answers: content blocks, output tokens and stop reason for one request.

With a scenario task and case (see `SimTag`), the answer follows the scenario's ground truth for the request's turn
and input size: an `ANSWER: label-NNN` line in text wrapped in filler of the model's own wording (two models' right
answers share the answer line, not the text), just that line for a short-answer task (`answer.form: line`: two right
answers are the same text), or a call of the answer tool; an agent's intermediate steps call a lookup tool instead.
A judge request (see `_judge`) gets a verdict. Otherwise a generic text (or a tool call when tools are offered) of a
length drawn from the request itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from claude_sim._judge import judge_answers, truth, verdict
from claude_sim._models import sim_models
from claude_sim._rng import unit
from claude_sim._scenario import Decision, Scenario, answer_line
from claude_sim._spec import JudgeSpec
from claude_sim._tokens import FILLER_VARIANTS, filler, json_tokens, text_tokens

GENERIC_MIN_TOKENS = 12
GENERIC_SPAN_TOKENS = 180
_JUDGE_REASON_TOKENS = 24


@dataclass(frozen=True)
class SimTag:
    """The scenario task, case and turn a request belongs to (sent by the workload driver)."""

    task: str
    case: int
    turn: int = 1


@dataclass
class Reply:
    blocks: list[dict[str, Any]] = field(default_factory=list)
    output_tokens: int = 0
    stop_reason: str = "end_turn"
    decision: Decision | None = None  # the scenario's ground truth behind it, when there is one


def _padded(line: str) -> str:
    # Whole tokens (4 characters) keep `text_tokens` of the assembled reply exact.
    return line + " " * (-len(line) % 4)


JUDGE_REPLY_TOKENS = text_tokens(_padded("VERDICT: TIE\n")) + _JUDGE_REASON_TOKENS  # the longest verdict reply


def _text_reply(answer: str | None, tokens: int, position: str, salt: int) -> str:
    if answer is None:
        return filler(tokens, salt)
    line = _padded(answer_line(answer) + ("\n" if position == "start" else ""))
    body = filler(max(0, tokens - text_tokens(line)), salt)
    if position == "start":
        return line + body
    return body + _padded("\n" + answer_line(answer))


def _tool_input(schema: Any, answer: str | None) -> dict[str, Any]:
    properties = schema.get("properties", {}) if isinstance(schema, dict) else {}
    value: dict[str, Any] = {}
    for name, spec in properties.items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        if name == "answer" and answer is not None:
            value[name] = answer
        elif kind in ("integer", "number"):
            value[name] = 1
        elif kind == "boolean":
            value[name] = True
        else:
            value[name] = "sim"
    return value


def _chosen_tool(body: dict[str, Any], step: int | None) -> dict[str, Any] | None:
    """The tool a reply calls: as `tool_choice` says, else the answer tool (the first), or for an agent's
    intermediate `step` a lookup tool (the others, in turn)."""
    tools = [tool for tool in body.get("tools") or [] if isinstance(tool, dict) and "input_schema" in tool]
    choice = body.get("tool_choice") or {}
    if not tools or choice.get("type") == "none":
        return None
    if choice.get("type") == "tool":
        return next((tool for tool in tools if tool.get("name") == choice.get("name")), tools[0])
    if step is not None and len(tools) > 1:
        return tools[1 + step % (len(tools) - 1)]
    return tools[0]


def _thinking(body: dict[str, Any], request_key: str) -> tuple[dict[str, Any], int] | None:
    config = body.get("thinking")
    if not isinstance(config, dict) or config.get("type") not in ("enabled", "adaptive"):
        return None
    budget = int(config.get("budget_tokens") or 1024)
    tokens = min(budget, 16 + int(unit(request_key, "thinking") * 240))
    signature = base64.b64encode(hashlib.sha256(request_key.encode()).digest() * 3).decode()
    return {"type": "thinking", "thinking": filler(tokens, 3), "signature": signature}, tokens


def _salt(*parts: object) -> int:
    return int(unit(*parts) * 1_000_000)


@lru_cache(maxsize=1)
def _ranks() -> dict[str, int]:
    return {name: rank for rank, name in enumerate(sorted(sim_models()))}


def _model_rank(model: str) -> int:
    return _ranks().get(model, len(_ranks())) % FILLER_VARIANTS


def _tool_use_id(request_key: str, model: str, seed: int) -> str:
    # A function of the request, not of the response: the same conversation has the same history on every run.
    return "toolu_01" + hashlib.blake2b(f"{seed}:{model}:{request_key}".encode(), digest_size=12).hexdigest()


def _judge_reply(body: dict[str, Any], request_key: str, scenario: Scenario | None, seed: int,
                 tag: SimTag | None, budget: int) -> Reply | None:
    answers = judge_answers(body)
    if answers is None:
        return None
    expected = None
    if scenario is not None and tag is not None and tag.task in scenario.tasks:
        expected = scenario.expected(tag.task, tag.case, tag.turn)
    said = verdict(scenario.judge if scenario else JudgeSpec(), truth(*answers, expected), seed, request_key)
    text = _padded(f"VERDICT: {said}\n") + filler(_JUDGE_REASON_TOKENS, _salt(seed, request_key))
    reply = Reply(stop_reason="end_turn")
    if text_tokens(text) > budget:
        text, reply.stop_reason = text[: budget * 4], "max_tokens"
    reply.blocks.append({"type": "text", "text": text})
    reply.output_tokens = text_tokens(text)
    return reply


def plan_reply(body: dict[str, Any], request_key: str, *, scenario: Scenario | None, seed: int,
               tag: SimTag | None, model: str, input_tokens: int) -> Reply:
    """`request_key` identifies the request content (a digest), `model` is the canonical catalog ID and
    `input_tokens` the request's whole input as the simulator counts it."""
    max_tokens = int(body["max_tokens"])
    judged = _judge_reply(body, request_key, scenario, seed, tag, max_tokens)
    if judged is not None:
        return judged
    reply = Reply()
    thinking = _thinking(body, request_key)
    budget = max_tokens
    if thinking is not None:
        block, tokens = thinking
        tokens = min(tokens, max_tokens)
        block["thinking"] = block["thinking"][: tokens * 4]
        reply.blocks.append(block)
        reply.output_tokens += tokens
        budget -= tokens

    step: int | None = None
    if tag is not None and scenario is not None and tag.task in scenario.tasks:
        task = scenario.tasks[tag.task]
        decision = scenario.decide(seed, tag.task, tag.case, model, input_tokens, tag.turn)
        reply.decision = decision
        wanted, answer, position = decision.output_tokens, decision.answer, task.answer_position
        as_tool = task.answer_kind == "tool"
        short = task.answer_form == "line"
        # Each model its own wording (distinct models never share a salt), varied by request.
        salt = _salt(seed, tag.task, tag.case, tag.turn) + _model_rank(model)
        if task.session is not None and task.session.agent and tag.turn < scenario.case(tag.task, tag.case).turns:
            step, answer, as_tool = tag.turn, None, True
    else:
        wanted = GENERIC_MIN_TOKENS + int(unit(seed, request_key, "length") * GENERIC_SPAN_TOKENS)
        answer, position, as_tool, salt, short = None, "end", True, 0, False

    tool = _chosen_tool(body, step) if as_tool else None
    if tool is not None:
        tool_input = _tool_input(tool.get("input_schema"), answer)
        preamble = _padded(f"Calling {tool.get('name')}.")
        needed = text_tokens(preamble) + json_tokens(tool_input)
        if needed <= budget and wanted <= budget:
            reply.blocks.append({"type": "text", "text": preamble})
            reply.blocks.append({"type": "tool_use", "id": _tool_use_id(request_key, model, seed),
                                 "name": tool.get("name"), "input": tool_input, "caller": {"type": "direct"}})
            # The model's reasoning around the call counts as output even though only the call is shown.
            reply.output_tokens += max(needed, min(wanted, budget))
            reply.stop_reason = "tool_use"
            return reply
    if short and answer is not None and not as_tool:
        # Only the answer line is shown; the rest of the output it is billed for is the model's unseen reasoning.
        text = _padded(answer_line(answer))[: budget * 4]
        reply.blocks.append({"type": "text", "text": text})
        reply.output_tokens += max(text_tokens(text), min(wanted, budget))
        reply.stop_reason = "max_tokens" if wanted > budget else "end_turn"
        return reply
    text = _text_reply(answer, wanted, position, salt)
    if text_tokens(text) > budget:
        text = text[: budget * 4]
        reply.stop_reason = "max_tokens"
    reply.blocks.append({"type": "text", "text": text})
    reply.output_tokens += text_tokens(text)
    return reply


def request_key(body: dict[str, Any]) -> str:
    """A digest of what was asked; `stream` is left out so both transports get the same answer."""
    content = {key: value for key, value in body.items() if key != "stream"}
    return hashlib.blake2b(json.dumps(content, sort_keys=True).encode(), digest_size=12).hexdigest()
