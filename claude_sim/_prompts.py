"""The requests a scenario's callers send: shared system prompts and tools, per-case user messages.

Sizes are exact under `_tokens` rules, so the oracle's cost arithmetic and the simulator's usage agree.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from claude_sim._scenario import Case, Scenario, Task
from claude_sim._tokens import MESSAGE_OVERHEAD, filler, json_tokens

ANSWER_TOOL = "record_answer"


@lru_cache(maxsize=1024)
def system_prompt(task: str, tokens: int, variant: int) -> str:
    """`tokens` tokens, the same for every call of one variant, different between variants (per-tenant prompts)."""
    head = f"[{task} policy v{variant:04d}] "
    head += " " * (-len(head) % 4)
    return head + filler(tokens - len(head) // 4, salt=variant)


@lru_cache(maxsize=64)
def tool_definitions(task: str, count: int, tokens: int) -> tuple[dict[str, Any], ...]:
    """`count` tools totalling about `tokens` tokens; the first records the answer."""
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
    head = f"case {case.index}: "
    head += " " * (-len(head) % 4)
    return head + filler(max(1, case.input_tokens - MESSAGE_OVERHEAD - len(head) // 4), salt=case.index)


def build_request(scenario: Scenario, case: Case, model: str, max_tokens: int) -> dict[str, Any]:
    """The Messages API body the baseline caller sends for this case (no cache_control: that is the policy's job)."""
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
