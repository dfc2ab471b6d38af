"""Where a policy puts prompt-cache breakpoints, within the API's rules and around the caller's own.

The API's rules (Anthropic prompt caching): at most 4 breakpoints per request, counting a top-level
`cache_control` (automatic caching: the API marks the last cacheable block); every 1h breakpoint before any 5m
one; a read looks back at most 20 blocks from a breakpoint for an earlier cached prefix.

Targets, in the order the budget serves them:
- the conversation: the last block of the newest user message, so the next turn reads everything this one sent
  (the mark moves forward every turn); and, when the newest turn adds more blocks than a read looks back (a long
  tool-heavy turn), the last block the previous turn sent, where its cache entry ends;
- the shared prefix: the end of tools and of the system prompt.
The caller's own breakpoints are kept and counted; a target the caller already marked is not marked twice, and a
breakpoint that would break the TTL order is not added. Changed parts are copies: the caller's objects stay as
they were.
"""

from __future__ import annotations

from typing import Any

from ._conversation import field_of
from ._request import RequestInfo
from .policy import CacheAction

__all__ = ["LOOKBACK_BLOCKS", "MAX_BREAKPOINTS", "add_breakpoints"]

MAX_BREAKPOINTS = 4  # the API rejects a fifth cache_control marker
LOOKBACK_BLOCKS = 20  # a breakpoint's read finds an entry at most this many blocks back, itself included
_UNMARKABLE = ("thinking", "redacted_thinking")  # the API caches them only as part of a prefix
_TTL_RANK = {"1h": 0, "5m": 1}

# A place in the prompt, in prompt order: (section, message, block); tools 0, system 1, messages 2, top level 3.
Place = tuple[int, int, int]
_AUTOMATIC: Place = (3, 0, 0)


def add_breakpoints(body: dict[str, Any], changed: dict[str, Any], cache: CacheAction, info: RequestInfo) -> int:
    """Add the rule's breakpoints to `changed` (copies of the parts it marks); the number added."""
    budget = MAX_BREAKPOINTS - info.breakpoints
    added = 0
    if cache.conversation_ttl != "none" and info.turns is not None and budget > 0:
        added += _mark_conversation(body, changed, cache.conversation_ttl, info, budget)
    if cache.ttl != "none":
        added += _mark_prefix(body, changed, cache.ttl, cache.targets, budget - added)
    return added


def _marker(ttl: str) -> dict[str, str]:
    return {"type": "ephemeral", "ttl": ttl} if ttl != "5m" else {"type": "ephemeral"}


def _has_marker(blocks: Any) -> bool:
    return isinstance(blocks, list) and any(isinstance(b, dict) and b.get("cache_control") for b in blocks)


def _mark_prefix(body: dict[str, Any], changed: dict[str, Any], ttl: str, targets: tuple[str, ...],
                 budget: int) -> int:
    """Mark the end of tools and/or system for caching, skipping parts the caller already marked."""
    added = 0
    if "tools" in targets and added < budget:
        tools = body.get("tools")
        if isinstance(tools, list) and tools and isinstance(tools[-1], dict) and not _has_marker(tools):
            changed["tools"] = [*tools[:-1], {**tools[-1], "cache_control": _marker(ttl)}]
            added += 1
    if "system" in targets and added < budget:
        system = body.get("system")
        if isinstance(system, str) and system:
            changed["system"] = [{"type": "text", "text": system, "cache_control": _marker(ttl)}]
            added += 1
        elif isinstance(system, list) and system and isinstance(system[-1], dict) and not _has_marker(system):
            changed["system"] = [*system[:-1], {**system[-1], "cache_control": _marker(ttl)}]
            added += 1
    return added


def _blocks(content: Any) -> list[Any]:
    return content if isinstance(content, list) else [content]


def _last_markable(content: Any) -> int | None:
    """Index of the last block of a message's content that can carry a breakpoint (a string is one text block)."""
    if isinstance(content, str):
        return 0 if content else None
    if not isinstance(content, list):
        return None
    for index in range(len(content) - 1, -1, -1):
        block = content[index]
        # The SDK's own objects (an answer resent as returned) are left alone: rewriting one as a dict could
        # change how it is sent, and with it the cached prefix.
        if not isinstance(block, dict) or block.get("type") in _UNMARKABLE:
            continue
        if block.get("type") == "text" and not block.get("text"):
            continue  # the API refuses a breakpoint on an empty text block
        return index
    return None


def _marked(content: Any, index: int) -> bool:
    block = _blocks(content)[index]
    return isinstance(block, dict) and bool(block.get("cache_control"))


def _mark_conversation(body: dict[str, Any], changed: dict[str, Any], ttl: str, info: RequestInfo,
                       budget: int) -> int:
    turns = info.turns
    messages = body.get("messages")
    if turns is None or not isinstance(messages, list):
        return 0
    targets: list[Place] = []  # the newest turn's end first: it serves every later turn
    newest = field_of(messages[turns.last_user], "content")
    final = _last_markable(newest)
    if not body.get("cache_control"):  # else the caller's own automatic caching marks the end (SDK sentinels are falsy)
        if final is not None and not _marked(newest, final):
            targets.append((2, turns.last_user, final))
        elif final is None and turns.last_user == len(messages) - 1:
            targets.append(_AUTOMATIC)  # nothing the policy may mark: the API marks the last cacheable block
    if turns.previous_end is not None:
        previous = field_of(messages[turns.previous_end], "content")
        end = _last_markable(previous)
        if end is not None and not _marked(previous, end):
            # Blocks from the one after the previous turn's end to the newest breakpoint, both included.
            span = len(_blocks(previous)) - end - 1
            span += sum(len(_blocks(field_of(m, "content"))) for m in messages[turns.previous_end + 1:turns.last_user])
            span += (final if final is not None else len(_blocks(newest)) - 1) + 1
            if span >= LOOKBACK_BLOCKS:
                targets.append((2, turns.previous_end, end))
    if info.breakpoints:
        theirs = _caller_marks(body)
        targets = [place for place in targets if _in_order(place, ttl, theirs)]
    targets = targets[:budget]
    if _AUTOMATIC in targets:
        changed["cache_control"] = _marker(ttl)
    in_messages = [place for place in targets if place != _AUTOMATIC]
    if in_messages:
        changed["messages"] = _with_markers(messages, in_messages, ttl)
    return len(targets)


def _with_markers(messages: list[Any], places: list[Place], ttl: str) -> list[Any]:
    copied = list(messages)
    for _, message_index, block_index in places:
        message = copied[message_index]
        content = field_of(message, "content")
        if isinstance(content, str):
            blocks: list[Any] = [{"type": "text", "text": content, "cache_control": _marker(ttl)}]
        else:
            blocks = list(content)
            blocks[block_index] = {**blocks[block_index], "cache_control": _marker(ttl)}
        copied[message_index] = {**message, "content": blocks} if isinstance(message, dict) \
            else {"role": field_of(message, "role"), "content": blocks}
    return copied


def _caller_marks(body: dict[str, Any]) -> list[tuple[Place, str]]:
    """The caller's breakpoints in prompt order, with their TTLs."""
    marks: list[tuple[Place, str]] = []

    def add(place: Place, item: Any) -> None:
        marker = field_of(item, "cache_control")
        if marker:
            marks.append((place, str(field_of(marker, "ttl") or "5m")))
        inner = field_of(item, "content")  # breakpoints nested in a tool result count at its place
        if isinstance(inner, list):
            for block in inner:
                add(place, block)

    for index, tool in enumerate(body.get("tools") or ()):
        add((0, index, 0), tool)
    system = body.get("system")
    for index, block in enumerate(system if isinstance(system, list) else ()):
        add((1, index, 0), block)
    messages = body.get("messages")
    for m_index, message in enumerate(messages if isinstance(messages, list) else ()):
        for b_index, block in enumerate(_blocks(field_of(message, "content"))):
            add((2, m_index, b_index), block)
    if body.get("cache_control"):
        add(_AUTOMATIC, body)
    return marks


def _in_order(place: Place, ttl: str, theirs: list[tuple[Place, str]]) -> bool:
    """Whether a breakpoint of `ttl` at `place` keeps every 1h breakpoint before every 5m one."""
    rank = _TTL_RANK[ttl]
    for other, other_ttl in theirs:
        other_rank = _TTL_RANK.get(other_ttl, 1)
        if (other < place and other_rank > rank) or (other > place and other_rank < rank):
            return False
    return True
