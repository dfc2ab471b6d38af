"""What the simulated model answers: content blocks, output tokens and stop reason for one request.

With a scenario task and case (see `SimRequestTag`), the answer follows the scenario's ground truth; otherwise a
generic text (or a tool call when tools are offered) of a length drawn from the request itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from claude_sim._rng import unit
from claude_sim._scenario import Scenario, answer_line
from claude_sim._tokens import filler, json_tokens, text_tokens

GENERIC_MIN_TOKENS = 12
GENERIC_SPAN_TOKENS = 180


@dataclass(frozen=True)
class SimTag:
    """The scenario task and case a request belongs to (sent by the workload driver)."""

    task: str
    case: int


@dataclass
class Reply:
    blocks: list[dict[str, Any]] = field(default_factory=list)
    output_tokens: int = 0
    stop_reason: str = "end_turn"


def _padded(line: str) -> str:
    # Whole tokens (4 characters) keep `text_tokens` of the assembled reply exact.
    return line + " " * (-len(line) % 4)


def _text_reply(answer: str | None, tokens: int, position: str, salt: int) -> str:
    if answer is None:
        return filler(tokens, salt)
    line = _padded(answer_line(answer) + ("\n" if position == "start" else ""))
    body = filler(max(0, tokens - text_tokens(line)), salt)
    if position == "start":
        return line + body
    return body + _padded("\n" + answer_line(answer))


def _truncate(text: str, tokens: int) -> str:
    return text[: tokens * 4]


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


def _chosen_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = [tool for tool in body.get("tools") or [] if isinstance(tool, dict) and "input_schema" in tool]
    choice = body.get("tool_choice") or {}
    if not tools or choice.get("type") == "none":
        return None
    if choice.get("type") == "tool":
        return next((tool for tool in tools if tool.get("name") == choice.get("name")), tools[0])
    return tools[0]


def _thinking(body: dict[str, Any], request_key: str) -> tuple[dict[str, Any], int] | None:
    config = body.get("thinking")
    if not isinstance(config, dict) or config.get("type") not in ("enabled", "adaptive"):
        return None
    budget = int(config.get("budget_tokens") or 1024)
    tokens = min(budget, 16 + int(unit(request_key, "thinking") * 240))
    signature = base64.b64encode(hashlib.sha256(request_key.encode()).digest() * 3).decode()
    return {"type": "thinking", "thinking": filler(tokens, 3), "signature": signature}, tokens


def plan_reply(body: dict[str, Any], request_key: str, message_id: str, *, scenario: Scenario | None,
               seed: int, tag: SimTag | None, model: str) -> Reply:
    """`request_key` identifies the request content (a digest), `model` is the canonical catalog ID."""
    max_tokens = int(body["max_tokens"])
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

    if tag is not None and scenario is not None and tag.task in scenario.tasks:
        task = scenario.tasks[tag.task]
        decision = scenario.decide(seed, tag.task, tag.case, model)
        wanted, answer, position = decision.output_tokens, decision.answer, task.answer_position
        as_tool = task.answer_kind == "tool"
    else:
        wanted = GENERIC_MIN_TOKENS + int(unit(seed, request_key, "length") * GENERIC_SPAN_TOKENS)
        answer, position, as_tool = None, "end", True

    tool = _chosen_tool(body) if as_tool else None
    if tool is not None:
        tool_input = _tool_input(tool.get("input_schema"), answer)
        preamble = _padded(f"Calling {tool.get('name')}.")
        needed = text_tokens(preamble) + json_tokens(tool_input)
        if needed <= budget and wanted <= budget:
            reply.blocks.append({"type": "text", "text": preamble})
            reply.blocks.append({"type": "tool_use", "id": "toolu_" + message_id[4:], "name": tool.get("name"),
                                 "input": tool_input, "caller": {"type": "direct"}})
            # The model's reasoning around the call counts as output even though only the call is shown.
            reply.output_tokens += max(needed, min(wanted, budget))
            reply.stop_reason = "tool_use"
            return reply
    text = _text_reply(answer, wanted, position, tag.case if tag else 0)
    if text_tokens(text) > budget:
        text = _truncate(text, budget)
        reply.stop_reason = "max_tokens"
    reply.blocks.append({"type": "text", "text": text})
    reply.output_tokens += text_tokens(text)
    return reply


def request_key(body: dict[str, Any]) -> str:
    """A digest of what was asked; `stream` is left out so both transports get the same answer."""
    content = {key: value for key, value in body.items() if key != "stream"}
    return hashlib.blake2b(json.dumps(content, sort_keys=True).encode(), digest_size=12).hexdigest()
