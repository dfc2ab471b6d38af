"""An answer to grade, read from a Message (SDK model or raw JSON) or collected from a stream's events.

Only calls sampled for paired evaluation pay for this: an un-sampled stream never collects its text.
"""

from __future__ import annotations

import json
from typing import Any

from ._response import field, fields
from .grading import Answer, ToolCall

__all__ = ["StreamCollector", "answer_of"]


def _tool_input(value: Any) -> Any:
    if isinstance(value, str):  # a streamed call's arguments arrive as JSON text
        try:
            return json.loads(value) if value else {}
        except ValueError:
            return None
    return value


def answer_of(message: Any) -> Answer:
    """The answer in a complete Message or its JSON dict."""
    data = fields(message)
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in data.get("content") or ():
        kind = field(block, "type")
        if kind == "text":
            text = field(block, "text")
            if isinstance(text, str):
                texts.append(text)
        elif kind in ("tool_use", "server_tool_use"):
            inp = field(block, "input")
            if hasattr(inp, "model_dump"):
                inp = inp.model_dump()
            calls.append(ToolCall(str(field(block, "name")), _tool_input(inp)))
    model, response_id, stop = data.get("model"), data.get("id"), data.get("stop_reason")
    return Answer(
        text="".join(texts),
        tool_calls=tuple(calls),
        stop_reason=stop if isinstance(stop, str) else None,
        model=model if isinstance(model, str) else None,
        response_id=response_id if isinstance(response_id, str) else None,
    )


class StreamCollector:
    """Rebuilds a streamed answer from its events (text deltas and tool-call argument deltas)."""

    __slots__ = ("_blocks", "_id", "_model", "_stop")

    def __init__(self) -> None:
        self._blocks: dict[int, list[Any]] = {}  # index -> [kind, name, parts]
        self._id: str | None = None
        self._model: str | None = None
        self._stop: str | None = None

    def on_event(self, event: Any) -> None:
        kind = field(event, "type")
        if kind == "content_block_delta":
            block = self._blocks.get(field(event, "index"))
            delta = field(event, "delta")
            if block is not None:
                piece = field(delta, "text") if block[0] == "text" else field(delta, "partial_json")
                if isinstance(piece, str):
                    block[2].append(piece)
        elif kind == "content_block_start":
            block = field(event, "content_block")
            block_kind = field(block, "type")
            if block_kind == "text":
                self._blocks[field(event, "index")] = ["text", None, [field(block, "text") or ""]]
            elif block_kind in ("tool_use", "server_tool_use"):
                self._blocks[field(event, "index")] = ["tool", str(field(block, "name")), []]
        elif kind == "message_start":
            message = field(event, "message")
            self._id, self._model = field(message, "id"), field(message, "model")
        elif kind == "message_delta":
            stop = field(field(event, "delta"), "stop_reason")
            if isinstance(stop, str):
                self._stop = stop

    def answer(self) -> Answer:
        texts = ["".join(parts) for kind, _, parts in self._ordered() if kind == "text"]
        calls = [ToolCall(name, _tool_input("".join(parts))) for kind, name, parts in self._ordered() if kind == "tool"]
        return Answer(
            text="".join(texts),
            tool_calls=tuple(calls),
            stop_reason=self._stop,
            model=self._model if isinstance(self._model, str) else None,
            response_id=self._id if isinstance(self._id, str) else None,
        )

    def _ordered(self) -> list[list[Any]]:
        return [self._blocks[index] for index in sorted(self._blocks, key=lambda i: i if isinstance(i, int) else 0)]
