"""Prompt caching semantics through the SDK, with an injected clock instead of sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from sim_helpers import FakeClock, cache_split, user

from claude_sim import SimServer
from claude_sim._tokens import filler

SONNET = "claude-sonnet-4-6"  # cache minimum 1,024 tokens (otel_claude/data/models.csv)
HAIKU = "claude-haiku-4-5"  # cache minimum 4,096 tokens


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(clock: FakeClock) -> Iterator[anthropic.Anthropic]:
    with SimServer(clock=clock) as sim:
        yield anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=0)


def system(tokens: int, ttl: str | None = "5m", salt: int = 0) -> list[dict[str, Any]]:
    block: dict[str, Any] = {"type": "text", "text": filler(tokens, salt)}
    if ttl:
        block["cache_control"] = {"type": "ephemeral", "ttl": ttl}
    return [block]


def call(client: anthropic.Anthropic, model: str = SONNET, **kwargs: Any) -> anthropic.types.Usage:
    kwargs.setdefault("messages", user("question"))
    return client.messages.create(model=model, max_tokens=10, **kwargs).usage


def test_write_then_read_within_ttl(client: anthropic.Anthropic, clock: FakeClock) -> None:
    first = call(client, system=system(2000))
    assert (first.cache_creation_input_tokens, first.cache_read_input_tokens, first.input_tokens) == (2000, 0, 6)
    assert cache_split(first) == (2000, 0)
    clock.advance(299)
    second = call(client, system=system(2000))
    assert (second.cache_creation_input_tokens, second.cache_read_input_tokens, second.input_tokens) == (0, 2000, 6)


def test_expiry_after_ttl_and_refresh_on_read(client: anthropic.Anthropic, clock: FakeClock) -> None:
    call(client, system=system(2000))
    clock.advance(200)
    assert call(client, system=system(2000)).cache_read_input_tokens == 2000  # refreshes to t+200+300
    clock.advance(250)  # 450 s after the write, 250 s after the refreshing read
    assert call(client, system=system(2000)).cache_read_input_tokens == 2000
    clock.advance(301)
    expired = call(client, system=system(2000))
    assert expired.cache_read_input_tokens == 0 and expired.cache_creation_input_tokens == 2000


def test_one_hour_ttl_outlives_five_minutes(client: anthropic.Anthropic, clock: FakeClock) -> None:
    first = call(client, system=system(1500, "1h"))
    assert cache_split(first) == (0, 1500)
    clock.advance(1800)
    assert call(client, system=system(1500, "1h")).cache_read_input_tokens == 1500


def test_below_model_minimum_nothing_cached(client: anthropic.Anthropic) -> None:
    for _ in range(2):
        usage = call(client, HAIKU, system=system(3000))  # 3,000 < Haiku 4.5's 4,096
        assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0
        assert usage.input_tokens == 3006  # "question": 2 tokens + 4 framing
    assert call(client, SONNET, system=system(3000)).cache_creation_input_tokens == 3000


def test_cache_is_per_model_and_exact_prefix(client: anthropic.Anthropic) -> None:
    call(client, system=system(2000))
    assert call(client, "claude-opus-4-1", system=system(2000)).cache_read_input_tokens == 0
    assert call(client, system=system(2000, salt=1)).cache_read_input_tokens == 0


def test_breakpoints_tools_system_messages_split_writes(client: anthropic.Anthropic, clock: FakeClock) -> None:
    tools = [{"name": "t", "description": filler(1200), "input_schema": {"type": "object", "properties": {}},
              "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    messages = [{"role": "user", "content": [
        {"type": "text", "text": filler(500), "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "tail"}]}]
    first = call(client, tools=tools, system=system(800), messages=messages)
    written_5m, tool_tokens = cache_split(first)
    assert tool_tokens >= 1200
    assert written_5m == 800 + 504  # system; message block + framing
    assert first.input_tokens == 1
    # A new conversation turn keeps the tools+system prefix: it is read, the new message part is written.
    changed = [{"role": "user", "content": [
        {"type": "text", "text": filler(500, 1), "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "tail"}]}]
    second = call(client, tools=tools, system=system(800), messages=changed)
    assert second.cache_read_input_tokens == tool_tokens + 800
    assert second.cache_creation_input_tokens == 504


def test_automatic_top_level_cache_control(client: anthropic.Anthropic) -> None:
    body = {"system": filler(1100), "messages": user("same question"),
            "extra_body": {"cache_control": {"type": "ephemeral"}}}
    first = call(client, **body)
    assert first.cache_creation_input_tokens == 1100 + 4 + 4 and first.input_tokens == 0
    assert call(client, **body).cache_read_input_tokens == first.cache_creation_input_tokens


def test_more_than_four_breakpoints_rejected(client: anthropic.Anthropic) -> None:
    blocks = [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError, match="A maximum of 4 blocks with cache_control"):
        call(client, system=blocks)
    # Four explicit plus the automatic one would be five as well.
    with pytest.raises(anthropic.BadRequestError):
        call(client, system=blocks[:4], extra_body={"cache_control": {"type": "ephemeral"}})


def test_one_hour_after_five_minutes_rejected(client: anthropic.Anthropic) -> None:
    blocks = system(1100, "5m") + system(1100, "1h", salt=2)
    with pytest.raises(anthropic.BadRequestError, match="1h"):
        call(client, system=blocks)


def _turns(count: int, marked: int | None) -> list[dict[str, Any]]:
    """A conversation of `count` one-block messages; `marked`: the index of the one with a breakpoint."""
    messages = []
    for index in range(count):
        block: dict[str, Any] = {"type": "text", "text": filler(60, index)}
        if index == marked:
            block["cache_control"] = {"type": "ephemeral"}
        messages.append({"role": "user" if index % 2 == 0 else "assistant", "content": [block]})
    return messages


def test_a_breakpoint_finds_an_entry_up_to_20_blocks_back(client: anthropic.Anthropic, clock: FakeClock) -> None:
    written = call(client, messages=_turns(21, 20))  # entry at block 20 (the 21st message)
    assert written.cache_creation_input_tokens > 0
    far = _turns(42, 41)  # a breakpoint 21 blocks after the entry: out of reach, everything is written again
    far[:21] = _turns(21, None)
    missed = call(client, messages=far)
    assert missed.cache_read_input_tokens == 0 and missed.cache_creation_input_tokens > 0
    near = _turns(40, 39)  # 19 blocks after it: within the lookback
    near[:21] = _turns(21, None)
    assert call(client, messages=near).cache_read_input_tokens == written.cache_creation_input_tokens


def test_a_read_refreshes_every_entry_its_breakpoints_matched(client: anthropic.Anthropic, clock: FakeClock) -> None:
    shared = system(1500)
    first = _turns(3, 2)
    call(client, system=shared, messages=first)  # entries: system prefix, and the conversation up to block 3
    clock.advance(250)
    follow = _turns(5, 4)
    follow[:3] = _turns(3, None)
    assert call(client, system=shared, messages=follow).cache_read_input_tokens > 1500  # reads the conversation
    clock.advance(250)  # 500 s after the system entry was written, 250 s after the read that matched it again
    other = call(client, system=shared, messages=[{"role": "user", "content": "a new conversation"}])
    assert other.cache_read_input_tokens == 1500


def test_a_1h_breakpoint_after_any_5m_one_is_rejected(client: anthropic.Anthropic) -> None:
    blocks = system(1100, "1h") + system(1100, "5m", salt=2) + system(1100, "1h", salt=3)
    with pytest.raises(anthropic.BadRequestError, match="1h"):
        call(client, system=blocks)


def test_a_conversation_below_the_model_minimum_is_not_cached(client: anthropic.Anthropic) -> None:
    for _ in range(2):
        usage = call(client, HAIKU, messages=_turns(3, 2))  # ~200 tokens < Haiku's 4,096
        assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0
