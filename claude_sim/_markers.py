"""Where cache breakpoints go: on the shared prefix (tools, system) and on the end of a conversation.

`mark_prefix` places them as the policy engine does for a rule's `cache` (last tool, last system block), so the
oracle prices what an enforced policy sends. `mark_conversation` puts one breakpoint on the last block of the last
message, moved forward every turn: what a caller (or a policy) caching a conversation sends; the driver applies it
for `conversation_cache` and the oracle for `TaskChoice.conversation_ttl`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["mark_conversation", "mark_prefix", "marker"]


def marker(ttl: str) -> dict[str, str]:
    return {"type": "ephemeral", "ttl": ttl} if ttl != "5m" else {"type": "ephemeral"}


def mark_prefix(body: dict[str, Any], ttl: str) -> dict[str, Any]:
    marked = dict(body)
    tools = body.get("tools")
    if tools:
        marked["tools"] = [*tools[:-1], {**tools[-1], "cache_control": marker(ttl)}]
    system = body.get("system")
    if isinstance(system, str) and system:
        marked["system"] = [{"type": "text", "text": system, "cache_control": marker(ttl)}]
    elif isinstance(system, list) and system:
        marked["system"] = [*system[:-1], {**system[-1], "cache_control": marker(ttl)}]
    return marked


def mark_conversation(body: dict[str, Any], ttl: str) -> dict[str, Any]:
    messages = list(body["messages"])
    last = messages[-1]
    content = last["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    blocks[-1] = {**blocks[-1], "cache_control": marker(ttl)}
    messages[-1] = {**last, "content": blocks}
    return {**body, "messages": messages}
