"""Builders for API-shaped SSE event sequences and messages used across instrumentor tests."""

from __future__ import annotations

from typing import Any

MODEL = "claude-sonnet-4-6"


def message(text: str = "Hello!", *, model: str = MODEL, stop: str = "end_turn", usage: dict[str, Any] | None = None,
            msg_id: str = "msg_01") -> dict[str, Any]:
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 12, "output_tokens": 5},
    }


def stream_events(deltas: list[str], *, model: str = MODEL, output_tokens: int | None = None,
                  start_usage: dict[str, Any] | None = None, stop: str = "end_turn", with_stop: bool = True,
                  msg_id: str = "msg_01") -> list[tuple[str, Any]]:
    usage = {"input_tokens": 20, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    usage.update(start_usage or {})
    events: list[tuple[str, Any]] = [
        ("message_start", {"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": usage}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
    ]
    for text in deltas:
        events.append(("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": text}}))
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": {"output_tokens": output_tokens if output_tokens is not None
                                               else len(deltas)}}))
    if with_stop:
        events.append(("message_stop", {"type": "message_stop"}))
    return events


def error_body(kind: str, message: str = "boom") -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_err"}
