"""What a call asks for: its operation, the parameters actually sent, and a privacy-safe prompt summary."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ._conversation import Turns, content_size, read_messages

__all__ = ["RequestInfo", "operation_of", "summarize_request"]

_EXACT_OPERATIONS = {
    ("post", "/v1/messages"): "chat",
    ("post", "/v1/messages?beta=true"): "chat",
    ("post", "/v1/messages/count_tokens"): "count_tokens",
    ("post", "/v1/messages/count_tokens?beta=true"): "count_tokens",
    ("post", "/v1/messages/batches"): "create_batch",
    ("post", "/v1/messages/batches?beta=true"): "create_batch",
    ("get", "/v1/messages/batches"): "list_batches",
    ("get", "/v1/messages/batches?beta=true"): "list_batches",
    ("post", "/v1/complete"): "text_completion",
}
_BATCHES = "/v1/messages/batches/"
# Rough size of a token in characters of English text and JSON; only used to rank and bucket requests, never billed.
_CHARS_PER_TOKEN = 4


def operation_of(method: str, url: str) -> str | None:
    """The GenAI operation name for an SDK request, or None for endpoints this library does not trace."""
    method = method.lower()
    op = _EXACT_OPERATIONS.get((method, url))
    if op is not None or not url.startswith(_BATCHES):
        return op
    path = url.split("?", 1)[0]
    if method == "delete":
        return "delete_batch"
    if path.endswith("/cancel"):
        return "cancel_batch"
    if path.endswith("/results"):
        return "batch_results"
    return "retrieve_batch" if method == "get" else None


@dataclass(slots=True)
class RequestInfo:
    """What one request asks for, read once from its body: the parameters telemetry and policy conditions need.

    Typed fields, not attributes: `_attributes` turns them into span attributes in one place.
    """

    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    stop_sequences: list[str] | None = None
    prefix_fingerprint: str | None = None
    prefix_chars: int = 0
    total_chars: int = 0
    breakpoints: int = 0
    # Conversation keys (see `_conversation`): set when the messages hold a user turn.
    turns: Turns | None = None
    conversation_fingerprint: str | None = None
    parent_fingerprint: str | None = None
    history_chars: int = 0  # tools + system + the messages the previous turn sent

    @property
    def prefix_tokens_estimate(self) -> int:
        return self.prefix_chars // _CHARS_PER_TOKEN

    @property
    def history_tokens_estimate(self) -> int:
        return self.history_chars // _CHARS_PER_TOKEN

    @property
    def input_tokens_estimate(self) -> int:
        return self.total_chars // _CHARS_PER_TOKEN


def _without_cache_control(item: Any) -> Any:
    # The fingerprint must not change when a policy adds breakpoints, or caching would hide its own evidence.
    if isinstance(item, dict) and "cache_control" in item:
        return {k: v for k, v in item.items() if k != "cache_control"}
    return item


# Fingerprints of plain-string system prompts sent without tools, by prompt: services send the same few prompts
# over and over (usually the very same string object, whose hash Python caches), and a lookup costs a fraction of
# hashing the prompt again. Bounded by entries; emptied when full.
_STRING_PROMPTS: dict[str, str] = {}
_MAX_STRING_PROMPTS = 256


def _fingerprint(tools: Any, system: Any) -> str | None:
    if not tools and not system:
        return None
    if not tools and isinstance(system, str):
        digest = _STRING_PROMPTS.get(system)
        if digest is None:
            if len(_STRING_PROMPTS) >= _MAX_STRING_PROMPTS:
                _STRING_PROMPTS.clear()
            digest = _STRING_PROMPTS[system] = _digest(tools, system)
        return digest
    if isinstance(system, list):
        system = [_without_cache_control(b) for b in system]
    if isinstance(tools, list):
        tools = [_without_cache_control(t) for t in tools]
    return _digest(tools, system)


def _digest(tools: Any, system: Any) -> str:
    return hashlib.blake2b(repr((tools, system)).encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def summarize_request(body: Any) -> RequestInfo:
    """Read the request body once: parameters, prefix fingerprint and sizes, breakpoints, conversation keys."""
    if not isinstance(body, dict):
        return RequestInfo()
    model = body.get("model")
    max_tokens = body.get("max_tokens")
    stops = body.get("stop_sequences")
    tools = body.get("tools")
    system = body.get("system")
    tool_chars = tool_marks = 0
    if isinstance(tools, list):
        for tool in tools:
            if isinstance(tool, dict):
                tool_chars += len(repr(_without_cache_control(tool)))
                tool_marks += 1 if tool.get("cache_control") else 0
    sys_chars, sys_marks = content_size(system) if system is not None else (0, 0)
    prefix_chars = tool_chars + sys_chars
    prefix = _fingerprint(tools, system)
    messages = read_messages(body.get("messages"), prefix)
    top_level = 1 if body.get("cache_control") else 0
    return RequestInfo(
        model=model if isinstance(model, str) else None,
        max_tokens=max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) else None,
        temperature=_number(body.get("temperature")),
        top_p=_number(body.get("top_p")),
        # A double in the GenAI attribute registry, although the API takes an integer.
        top_k=_number(body.get("top_k")),
        stop_sequences=stops if isinstance(stops, list) and all(isinstance(s, str) for s in stops) else None,
        prefix_fingerprint=prefix,
        prefix_chars=prefix_chars,
        total_chars=prefix_chars + messages.chars,
        breakpoints=tool_marks + sys_marks + messages.breakpoints + top_level,
        turns=messages.turns,
        conversation_fingerprint=messages.fingerprint,
        parent_fingerprint=messages.parent,
        history_chars=prefix_chars + messages.history_chars if messages.parent is not None else 0,
    )
