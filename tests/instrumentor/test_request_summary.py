"""The privacy-safe request summary on chat spans: prefix fingerprint, size estimates and cache breakpoints."""

from __future__ import annotations

from typing import Any

import anthropic
from events import MODEL, message
from scripted_server import Reply, ScriptedServer

SYSTEM = "You are a careful support agent. " * 20
TOOLS = [{"name": "lookup_order", "description": "Find an order by id.",
          "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}}}]


def _spans_of(instrumented: Any, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with ScriptedServer(lambda _request: Reply.json(message())) as server:
        client = anthropic.Anthropic(base_url=server.base_url, api_key="sk-test", max_retries=0)
        for extra in calls:
            client.messages.create(**{"model": MODEL, "max_tokens": 50,
                                      "messages": [{"role": "user", "content": "hi"}], **extra})
    return [dict(span.attributes or {}) for span in instrumented.call_spans()]


def test_fingerprint_identifies_the_reusable_prefix(instrumented) -> None:  # type: ignore[no-untyped-def]
    other = "You are a terse classifier. " * 20
    spans = _spans_of(instrumented, [
        {"system": SYSTEM},
        {"system": "".join([SYSTEM])},  # equal text, another string object
        {"system": other},
        {"system": SYSTEM, "tools": TOOLS},
        {"system": [{"type": "text", "text": SYSTEM}], "tools": TOOLS},
        {"system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}], "tools": TOOLS},
        {},
    ])
    prints = [span.get("otel_claude.prefix.fingerprint") for span in spans]
    assert prints[0] == prints[1]
    assert len({prints[0], prints[2], prints[3], prints[4]}) == 4
    assert prints[4] == prints[5]  # a breakpoint (as a policy adds) must not change which prefix it is
    assert prints[6] is None and "otel_claude.prefix.tokens_estimate" not in spans[6]
    assert all(isinstance(p, str) and len(p) == 16 for p in prints[:6])


def test_string_prompt_fingerprint_does_not_depend_on_what_was_sent_before(instrumented) -> None:  # type: ignore[no-untyped-def]
    from otel_claude import _request

    first = _spans_of(instrumented, [{"system": SYSTEM}])[-1]["otel_claude.prefix.fingerprint"]
    # Fill the memo past its bound so it is emptied, then send the prompt again: same fingerprint.
    _spans_of(instrumented, [{"system": f"prompt {i}"} for i in range(_request._MAX_STRING_PROMPTS + 1)])
    again = _spans_of(instrumented, [{"system": SYSTEM}])[-1]["otel_claude.prefix.fingerprint"]
    assert again == first
    assert len(_request._STRING_PROMPTS) <= _request._MAX_STRING_PROMPTS


def test_sizes_and_breakpoints(instrumented) -> None:  # type: ignore[no-untyped-def]
    long_message = "x" * 4000
    spans = _spans_of(instrumented, [
        {"system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
         "messages": [{"role": "user", "content": [
             {"type": "text", "text": long_message, "cache_control": {"type": "ephemeral"}}]}]},
    ])
    attrs = spans[0]
    assert attrs["otel_claude.prefix.tokens_estimate"] == len(SYSTEM) // 4
    assert attrs["otel_claude.input.tokens_estimate"] == (len(SYSTEM) + len(long_message)) // 4
    assert attrs["otel_claude.cache.breakpoints"] == 2


def test_fingerprint_reveals_no_prompt_text(instrumented) -> None:  # type: ignore[no-untyped-def]
    attrs = _spans_of(instrumented, [{"system": SYSTEM, "tools": TOOLS}])[0]
    values = " ".join(str(v) for v in attrs.values())
    assert "careful support" not in values and "lookup_order" not in values
