"""Deterministic token counting: a documented approximation, so tests and the oracle can assert exact numbers.

Rules (stable; the workload driver sizes prompts with them):
- text: ceil(characters / 4) tokens (`text_tokens`); `filler(n)` builds text of exactly n tokens;
- each message adds 4 framing tokens; the system prompt adds none beyond its text;
- a tool definition, tool_use input, tool_result or any other JSON-ish block: tokens of its compact JSON;
- an image or document block with binary data: a flat 1,600 tokens (about a 1,000x1,000 px image).
The real tokenizer is not public; these rules keep ratios realistic (about 4 characters per token in English).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

MESSAGE_OVERHEAD = 4
MEDIA_TOKENS = 1600
_CHARS_PER_TOKEN = 4
_WORDS = ("the ", "and ", "for ", "you ", "can ", "all ", "was ", "new ", "use ", "one ", "set ", "row ")


def text_tokens(text: str) -> int:
    return -(-len(text) // _CHARS_PER_TOKEN)


def json_tokens(value: Any) -> int:
    return text_tokens(json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False))


_STRIDES = (7, 5, 1, 11)  # coprime with the 12 words: each gives a different order
FILLER_VARIANTS = len(_WORDS) * len(_STRIDES)  # distinct texts `filler` makes (salts modulo this)


@lru_cache(maxsize=64)
def _period(salt: int) -> str:
    stride = _STRIDES[(salt // len(_WORDS)) % len(_STRIDES)]
    return "".join(_WORDS[(i * stride + salt) % len(_WORDS)] for i in range(len(_WORDS)))


def filler(tokens: int, salt: int = 0) -> str:
    """Readable-looking text of exactly `tokens` tokens (4 characters each); `salt` varies the word order (48
    different texts). Built from one repeated period, so long texts cost a string multiplication, not a loop."""
    if tokens <= 0:
        return ""
    period = _period(salt % FILLER_VARIANTS)
    whole, rest = divmod(tokens, len(_WORDS))
    return period * whole + period[: rest * _CHARS_PER_TOKEN]


def block_tokens(block: Any) -> int:
    """Tokens of one content block, tool definition or system block."""
    if isinstance(block, str):
        return text_tokens(block)
    if not isinstance(block, dict):
        return json_tokens(block)
    kind = block.get("type")
    if kind == "text":
        return text_tokens(str(block.get("text", "")))
    if kind == "thinking":
        return text_tokens(str(block.get("thinking", "")))
    if kind in ("image", "document") and isinstance(block.get("source"), dict):
        source = block["source"]
        if source.get("type") == "text":
            return text_tokens(str(source.get("data", "")))
        return MEDIA_TOKENS
    return json_tokens({k: v for k, v in block.items() if k != "cache_control"})
