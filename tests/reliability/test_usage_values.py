"""Usage counts the API should never send (negative, fractional, strings, past int64) are recorded as unreadable:
no negative usage or cost on the span, and the cost and cache counters (which only go up) stay where they were."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from events import message, stream_events
from scripted_server import Reply, ScriptedServer

MODEL = "claude-sonnet-4-6"
ARGS: dict[str, Any] = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
GOOD = {"input_tokens": 1000, "output_tokens": 100, "cache_read_input_tokens": 500}
BAD_VALUES = {"negative": -1_000_000, "fractional": 12.5, "string": "lots", "past int64": 2**64}


def counter_total(instrumented: Any, name: str) -> float:  # type: ignore[no-untyped-def]
    return sum(point.value for point in instrumented.metric_points(name))


def run(instrumented: Any, replies: list[Reply], stream: bool) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer(replies) as server:
        api = anthropic.Anthropic(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=120.0)
        for _ in replies:
            if stream:
                list(api.messages.create(**ARGS, stream=True))
            else:
                api.messages.create(**ARGS)


@pytest.mark.parametrize(("field", "bad"), [("input_tokens", "negative"), ("output_tokens", "negative"),
                                            ("output_tokens", "fractional"), ("cache_read_input_tokens", "string"),
                                            ("input_tokens", "past int64")])
@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_unreadable_count_gives_no_cost_and_leaves_counters(instrumented, field: str, bad: str,  # type: ignore[no-untyped-def]
                                                            stream: bool) -> None:
    usage = {**GOOD, field: BAD_VALUES[bad]}

    def reply(counts: dict[str, Any]) -> Reply:
        if not stream:
            return Reply.json(message(usage=counts))
        start = {k: v for k, v in counts.items() if k != "output_tokens"}
        return Reply.sse(stream_events(["a", "b"], start_usage=start, output_tokens=counts["output_tokens"]))

    run(instrumented, [reply(GOOD)], stream)
    cost_before = counter_total(instrumented, "otel_claude.cost")
    cache_before = counter_total(instrumented, "otel_claude.cache.tokens")
    assert cost_before > 0 and cache_before > 0
    run(instrumented, [reply(usage)], stream)
    good, bad_span = instrumented.call_spans()
    assert good.attributes["otel_claude.cost_usd"] > 0
    attrs = bad_span.attributes
    assert attrs["otel_claude.usage.unreadable"] == (field,)
    assert "otel_claude.cost_usd" not in attrs
    assert all(value >= 0 for key, value in attrs.items() if key.startswith("gen_ai.usage."))
    assert counter_total(instrumented, "otel_claude.cost") == cost_before
    assert counter_total(instrumented, "otel_claude.cache.tokens") == cache_before
    assert counter_total(instrumented, "otel_claude.calls") == 2  # the call itself still happened
    readable = {"input_tokens": "gen_ai.usage.input_tokens", "output_tokens": "gen_ai.usage.output_tokens"}
    for name, attribute in readable.items():
        if name != field and field != "cache_read_input_tokens":
            assert attribute in attrs, f"the readable {name} is still recorded"


def test_unreadable_token_count_of_count_tokens(instrumented) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer([Reply.json({"input_tokens": -5})]) as server:
        api = anthropic.Anthropic(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=120.0)
        api.messages.count_tokens(model=MODEL, messages=ARGS["messages"])
    (span,) = instrumented.call_spans()
    assert "gen_ai.usage.input_tokens" not in span.attributes
    assert span.attributes["otel_claude.usage.unreadable"] == ("input_tokens",)
