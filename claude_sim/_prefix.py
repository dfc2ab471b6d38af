"""A request as the cache sees it: the ordered blocks tools -> system -> messages, their sizes and breakpoints."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from claude_sim._tokens import MESSAGE_OVERHEAD, block_tokens

MAX_BREAKPOINTS = 4
LOOKBACK_BLOCKS = 20
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


@dataclass(frozen=True)
class Block:
    tokens: int
    content: Any  # the block without its cache_control, for prefix identity
    ttl: str | None  # the breakpoint's TTL when this block carries cache_control


@dataclass(frozen=True)
class Prompt:
    blocks: list[Block]
    breakpoints: list[int]  # block indexes, in prompt order
    total_tokens: int

    def prefix_digests(self) -> list[bytes]:
        """Chained digests: equal at index i exactly when blocks 0..i are equal (an exact-prefix cache key)."""
        digests: list[bytes] = []
        previous = b""
        for block in self.blocks:
            encoded = json.dumps(block.content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
            previous = hashlib.blake2b(previous + encoded, digest_size=16).digest()
            digests.append(previous)
        return digests


class PromptError(ValueError):
    """Bad cache_control placement; the message is the API's wording."""


def _ttl(marker: Any, where: str) -> str:
    if not isinstance(marker, dict) or marker.get("type") != "ephemeral":
        raise PromptError(f"{where}.cache_control.type: Input should be 'ephemeral'")
    ttl = marker.get("ttl", "5m")
    if ttl not in TTL_SECONDS:
        raise PromptError(f"{where}.cache_control.ttl: Input should be '5m' or '1h'")
    return str(ttl)


def _block(raw: Any, where: str, extra_tokens: int = 0, role: str | None = None) -> Block:
    if isinstance(raw, str):
        content: Any = {"type": "text", "text": raw}
        marker = None
    else:
        content = {k: v for k, v in raw.items() if k != "cache_control"} if isinstance(raw, dict) else raw
        marker = raw.get("cache_control") if isinstance(raw, dict) else None
    if role is not None:
        content = {"role": role, "block": content}
    ttl = _ttl(marker, where) if marker is not None else None
    return Block(tokens=block_tokens(raw) + extra_tokens, content=content, ttl=ttl)


def head_blocks(body: dict[str, Any]) -> list[Block]:
    """The tools, then the system prompt, as blocks."""
    blocks: list[Block] = []
    for index, tool in enumerate(body.get("tools") or []):
        blocks.append(_block(tool, f"tools.{index}"))
    system = body.get("system")
    if isinstance(system, str):
        if system:
            blocks.append(_block(system, "system"))
    elif isinstance(system, list):
        for index, part in enumerate(system):
            blocks.append(_block(part, f"system.{index}"))
    return blocks


def message_blocks(message: dict[str, Any], m_index: int) -> list[Block]:
    """One message's content blocks; the first carries the message framing."""
    content = message.get("content")
    parts = [content] if isinstance(content, str) else list(content or [])
    return [_block(part, f"messages.{m_index}.content.{p_index}", MESSAGE_OVERHEAD if p_index == 0 else 0,
                   message.get("role")) for p_index, part in enumerate(parts)]


def with_breakpoints(blocks: list[Block], ttls: dict[int, str]) -> Prompt:
    """A prompt of unmarked `blocks` with breakpoints placed at these block indexes (checked like a request's)."""
    marked = [Block(block.tokens, block.content, ttls[index]) if index in ttls else block
              for index, block in enumerate(blocks)]
    return _checked(marked, sorted(ttls))


def _checked(blocks: list[Block], breakpoints: list[int]) -> Prompt:
    if len(breakpoints) > MAX_BREAKPOINTS:
        raise PromptError(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {len(breakpoints)}."
        )
    ttls = [blocks[index].ttl for index in breakpoints]
    if "5m" in ttls and "1h" in ttls[ttls.index("5m"):]:
        raise PromptError("cache_control: a ttl='1h' cache entry must come before any ttl='5m' entry")
    return Prompt(blocks=blocks, breakpoints=breakpoints, total_tokens=sum(block.tokens for block in blocks))


def flatten(body: dict[str, Any]) -> Prompt:
    blocks = head_blocks(body)
    for m_index, message in enumerate(body.get("messages") or []):
        blocks += message_blocks(message, m_index)
    breakpoints = [index for index, block in enumerate(blocks) if block.ttl is not None]
    auto = body.get("cache_control")
    if auto is not None and blocks:
        ttl = _ttl(auto, "body")
        last = len(blocks) - 1
        if last not in breakpoints:
            # Automatic caching puts one breakpoint on the last block and uses one of the four slots.
            blocks[last] = Block(blocks[last].tokens, blocks[last].content, ttl)
            breakpoints.append(last)
    return _checked(blocks, breakpoints)
