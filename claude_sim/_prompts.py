"""The requests a scenario's callers send: shared system prompts and tools, per-case user messages, and for
multi-turn tasks the whole conversation so far.

Sizes are exact under `_tokens` rules, so the oracle's cost arithmetic and the simulator's usage agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from claude_sim._scenario import Case, Scenario, Task
from claude_sim._tokens import MESSAGE_OVERHEAD, filler, json_tokens

__all__ = ["ANSWER_TOOL", "build_request", "echo", "next_request", "system_prompt", "tool_definitions",
           "user_message"]

ANSWER_TOOL = "record_answer"


def _headed(head: str, tokens: int, salt: int) -> str:
    head += " " * (-len(head) % 4)
    return head + filler(max(1, tokens - len(head) // 4), salt=salt)


@lru_cache(maxsize=1024)
def system_prompt(task: str, tokens: int, variant: int) -> str:
    """`tokens` tokens, the same for every call of one variant, different between variants (per-tenant prompts)."""
    head = f"[{task} policy v{variant:04d}] "
    head += " " * (-len(head) % 4)
    return head + filler(tokens - len(head) // 4, salt=variant)


@lru_cache(maxsize=64)
def tool_definitions(task: str, count: int, tokens: int) -> tuple[dict[str, Any], ...]:
    """`count` tools totalling about `tokens` tokens; the first records the answer, the others look things up."""
    if count <= 0:
        return ()
    tools: list[dict[str, Any]] = []
    for index in range(count):
        name = ANSWER_TOOL if index == 0 else f"{task}_lookup_{index}"
        properties: dict[str, Any] = {"answer": {"type": "string"}} if index == 0 else {"query": {"type": "string"}}
        tool = {"name": name, "description": "", "input_schema": {"type": "object", "properties": properties,
                                                                   "required": list(properties)}}
        tool["description"] = filler(max(1, tokens // count - json_tokens(tool)), salt=index)
        tools.append(tool)
    return tuple(tools)


def user_message(case: Case) -> str:
    """The first turn's user message: `case.input_tokens` tokens including the message framing."""
    return _headed(f"case {case.index}: ", case.input_tokens - MESSAGE_OVERHEAD, case.index)


def build_request(scenario: Scenario, case: Case, model: str, max_tokens: int) -> dict[str, Any]:
    """The Messages API body the baseline caller sends for the first turn of this case (no cache_control: that is
    the policy's job)."""
    task: Task = scenario.tasks[case.task]
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": user_message(case)}],
    }
    if task.system_tokens:
        body["system"] = system_prompt(task.name, task.system_tokens, case.system_variant)
    tools = tool_definitions(task.name, task.tool_count, task.tool_tokens)
    if tools:
        body["tools"] = list(tools)
    return body


def _field(block: Any, name: str) -> Any:
    return block.get(name) if isinstance(block, dict) else getattr(block, name, None)


def echo(content: Iterable[Any]) -> list[dict[str, Any]]:
    """An assistant reply (SDK blocks or dicts) as a caller sends it back: text and tool calls, nothing else, so
    the history is the same whatever SDK version read it."""
    blocks: list[dict[str, Any]] = []
    for block in content:
        kind = _field(block, "type")
        if kind == "text":
            blocks.append({"type": "text", "text": _field(block, "text")})
        elif kind == "tool_use":
            blocks.append({"type": "tool_use", "id": _field(block, "id"), "name": _field(block, "name"),
                           "input": _field(block, "input")})
    return blocks


def next_request(scenario: Scenario, task: str, body: dict[str, Any], reply: list[dict[str, Any]], case: int,
                 turn: int) -> dict[str, Any]:
    """The caller's request for `turn` (>= 2): the previous request's messages, the assistant's reply as echoed,
    then the tool results for its tool calls (agent) or the user's next message."""
    spec = scenario.tasks[task]
    calls = [block for block in reply if block["type"] == "tool_use"]
    if spec.session is not None and spec.session.agent and calls:
        tokens = scenario.tool_result_tokens(spec.name, case, turn)
        content: Any = [{"type": "tool_result", "tool_use_id": block["id"], "content": filler(tokens, turn + i)}
                        for i, block in enumerate(calls)]
    else:
        tokens = scenario.user_tokens(spec.name, case, turn)
        content = _headed(f"case {case} turn {turn}: ", tokens - MESSAGE_OVERHEAD, case + turn)
    messages = [*body["messages"]]
    if reply:
        messages.append({"role": "assistant", "content": reply})
    messages.append({"role": "user", "content": content})
    return {**body, "messages": messages}
