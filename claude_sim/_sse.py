"""Server-sent events byte-compatible with the API's recordings: event order, `ping`, padding, cumulative usage."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from claude_sim._rng import unit
from claude_sim._tokens import text_tokens

PING = b'event: ping\ndata: {"type": "ping"}\n\n'
# message_start.usage.output_tokens is a placeholder in real streams (1, 8, 26 seen); the final count comes later.
START_OUTPUT_PLACEHOLDER = 1
_MAX_CHUNK_TOKENS = 6


def frame(event: str, data: dict[str, Any], pad: int = 0) -> bytes:
    """One SSE frame; the API pads the JSON with spaces before its closing brace (`{"type":"message_stop"   }`)."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    if pad:
        text = text[:-1] + " " * pad + "}"
    return f"event: {event}\ndata: {text}\n\n".encode()


def _chunks(text: str, salt: str) -> Iterator[str]:
    position = 0
    step = 0
    while position < len(text):
        size = 4 * (1 + int(unit(salt, step) * _MAX_CHUNK_TOKENS))
        yield text[position : position + size]
        position += size
        step += 1


def _block_events(index: int, block: dict[str, Any], salt: str) -> Iterator[tuple[str, dict[str, Any], int]]:
    kind = block["type"]
    if kind == "text":
        yield "content_block_start", {"type": "content_block_start", "index": index,
                                      "content_block": {"type": "text", "text": ""}}, 0
        for piece in _chunks(block["text"], salt):
            yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "text_delta", "text": piece}}, text_tokens(piece)
    elif kind == "thinking":
        yield "content_block_start", {"type": "content_block_start", "index": index,
                                      "content_block": {"type": "thinking", "thinking": "", "signature": ""}}, 0
        for piece in _chunks(block["thinking"], salt):
            yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "thinking_delta", "thinking": piece}}, text_tokens(piece)
        yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                      "delta": {"type": "signature_delta", "signature": block["signature"]}}, 0
    elif kind == "tool_use":
        start = {**block, "input": {}}
        yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": start}, 0
        encoded = json.dumps(block["input"], separators=(",", ":"), ensure_ascii=False)
        for piece in ["", *_chunks(encoded, salt)]:
            yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "input_json_delta", "partial_json": piece}}, \
                text_tokens(piece)
    yield "content_block_stop", {"type": "content_block_stop", "index": index}, 0


def stream_events(message: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], int]]:
    """(event name, data, output tokens it carries) in the API's order; ping follows the first block start."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": min(usage["output_tokens"], START_OUTPUT_PLACEHOLDER)}}
    yield "message_start", {"type": "message_start", "message": start}, 0
    pinged = False
    for index, block in enumerate(message["content"]):
        for event in _block_events(index, block, f"{message['id']}:{index}"):
            yield event
            if not pinged and event[0] == "content_block_start":
                pinged = True
                yield "ping", {"type": "ping"}, 0
    final_usage = {key: usage[key] for key in
                   ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")}
    yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": message["stop_reason"],
                                                               "stop_sequence": message["stop_sequence"]},
                            "usage": final_usage}, 0
    yield "message_stop", {"type": "message_stop"}, 0


def encode(event: str, data: dict[str, Any], salt: str) -> bytes:
    if event == "ping":
        return PING
    return frame(event, data, pad=int(unit(salt, "pad") * 16))
