"""Conversation caching enforced through the real SDK against the simulator's prompt cache (exact prefixes, TTLs on
a clock the test moves, 20-block lookback, 4-breakpoint limit, 1h-before-5m order): what was sent, what was read."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

import otel_claude
from claude_sim import SimServer

MODEL = "claude-sonnet-4-6"  # cache minimum 1,024 tokens
SYSTEM = "You are a careful assistant for a hardware store. " * 100  # about 1,250 tokens: cacheable on its own
TOOLS = [{"name": "lookup", "description": "Look up a product.", "input_schema": {"type": "object"}}]
QUESTION = "Which drill should I buy for brick walls, and which bits go with it? " * 6


class Clock:
    """The simulator's time: tests move it between turns instead of waiting."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def policy(cache: dict[str, Any], mode: str = "enforce") -> dict[str, Any]:
    return {"schema_version": 1, "version": "conv", "mode": mode, "rules": [{"task": "chat", "cache": cache}]}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock: Clock) -> Iterator[SimServer]:
    with SimServer(seed=2, clock=clock) as server:
        yield server


@pytest.fixture
def enforce(telemetry):  # type: ignore[no-untyped-def]
    """Instrument with a policy; uninstrument after the test."""
    def go(pol: dict[str, Any]) -> None:
        otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                               policy=pol, policy_options={"reload_interval": 0})

    yield go
    otel_claude.uninstrument()


def _client(sim: SimServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sim.base_url, api_key="sk-test", max_retries=0, timeout=60)


def _total(usage: Any) -> int:
    return usage.input_tokens + (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)


def _markers(body: dict[str, Any]) -> list[str]:
    """TTLs of the breakpoints in a request as the simulator received it, in prompt order."""
    found = []

    def visit(item: Any) -> None:
        if isinstance(item, dict):
            if item.get("cache_control"):
                found.append(item["cache_control"].get("ttl", "5m"))
            content = item.get("content")
            if isinstance(content, list):
                for block in content:
                    visit(block)

    for tool in body.get("tools") or []:
        visit(tool)
    if isinstance(body.get("system"), list):
        for block in body["system"]:
            visit(block)
    for message in body["messages"]:
        visit(message)
    if body.get("cache_control"):
        found.append(body["cache_control"].get("ttl", "5m"))
    return found


def _chat(client: anthropic.Anthropic, clock: Clock, turns: int, think: float, **kwargs: Any) -> list[Any]:
    """A chat whose user thinks `think` seconds (simulator time) before each next question."""
    messages: list[dict[str, Any]] = []
    usages = []
    with otel_claude.task("chat"):
        for turn in range(turns):
            messages.append({"role": "user", "content": f"Question {turn}: {QUESTION}"})
            reply = client.messages.create(model=MODEL, max_tokens=300, system=SYSTEM, messages=messages, **kwargs)
            messages.append({"role": "assistant", "content": reply.content})
            usages.append(reply.usage)
            clock.now += think
    assert all("cache_control" not in repr(m) for m in messages), "the caller's objects were changed"
    return usages


def test_the_breakpoint_moves_forward_and_each_turn_reads_the_last(enforce, sim, clock) -> None:  # type: ignore[no-untyped-def]
    enforce(policy({"conversation": {"ttl": "5m"}}))
    usages = _chat(_client(sim), clock, turns=4, think=90)
    assert usages[0].cache_read_input_tokens == 0 and usages[0].cache_creation_input_tokens == _total(usages[0])
    for before, now in itertools.pairwise(usages):
        assert now.cache_read_input_tokens == _total(before)  # everything the previous turn sent
        assert now.cache_creation_input_tokens == _total(now) - _total(before)  # its answer and the new question
        assert now.input_tokens == 0
    for body in (r["json"] for r in sim.received):
        assert _markers(body) == ["5m"]
        last = body["messages"][-1]["content"]
        assert isinstance(last, list) and last[-1]["cache_control"] == {"type": "ephemeral"}


def test_the_ttl_decides_whether_a_slow_reply_still_reads(enforce, sim, clock) -> None:  # type: ignore[no-untyped-def]
    enforce(policy({"conversation": {"ttl": "5m"}}))
    five = _chat(_client(sim), clock, turns=3, think=400)  # the user comes back after 6 min 40 s
    assert [u.cache_read_input_tokens for u in five] == [0, 0, 0]
    otel_claude.uninstrument()
    enforce(policy({"conversation": {"ttl": "1h"}}))
    hour = _chat(_client(sim), clock, turns=3, think=400)
    assert hour[1].cache_read_input_tokens == _total(hour[0]) and hour[2].cache_read_input_tokens == _total(hour[1])
    assert all(_markers(r["json"]) == ["1h"] for r in sim.received[3:])


def _agent_turn(calls: int) -> list[dict[str, Any]]:
    """An answer with `calls` parallel tool calls and the user message with their results: 2 * calls blocks."""
    ids = [f"toolu_{i:020d}" for i in range(calls)]
    return [
        {"role": "assistant", "content": [{"type": "tool_use", "id": i, "name": "lookup", "input": {"n": k}}
                                          for k, i in enumerate(ids)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": i, "content": f"product {k} " * 40}
                                     for k, i in enumerate(ids)]},
    ]


def test_a_long_tool_turn_gets_an_intermediate_breakpoint(enforce, sim, clock, telemetry) -> None:  # type: ignore[no-untyped-def]
    first = [{"role": "user", "content": QUESTION}]
    second = first + _agent_turn(12)  # 24 new blocks: further back than one read looks
    enforce(policy({"conversation": {"ttl": "5m"}}))
    client = _client(sim)
    with otel_claude.task("chat"):
        one = client.messages.create(model=MODEL, max_tokens=100, system=SYSTEM, tools=TOOLS, messages=first)
        clock.now += 10
        two = client.messages.create(model=MODEL, max_tokens=100, system=SYSTEM, tools=TOOLS, messages=second)
    assert two.usage.cache_read_input_tokens == _total(one.usage)
    body = sim.received[-1]["json"]
    assert _markers(body) == ["5m", "5m"]
    assert body["messages"][0]["content"][-1]["cache_control"] == {"type": "ephemeral"}  # where turn 1 ended
    assert telemetry.call_spans()[-1].attributes["otel_claude.policy.cache_breakpoints_added"] == 2
    # Without the intermediate breakpoint the same request reads nothing: the lookback does not reach turn 1.
    otel_claude.uninstrument()
    with SimServer(seed=2, clock=clock) as fresh:
        plain = _client(fresh)
        marked = [{"role": "user",
                   "content": [{"type": "text", "text": QUESTION, "cache_control": {"type": "ephemeral"}}]}]
        plain.messages.create(model=MODEL, max_tokens=100, system=SYSTEM, tools=TOOLS, messages=marked)
        last = _agent_turn(12)
        last[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
        alone = plain.messages.create(model=MODEL, max_tokens=100, system=SYSTEM, tools=TOOLS, messages=first + last)
    assert alone.usage.cache_read_input_tokens == 0


def _marked_system(ttl: str = "5m") -> list[dict[str, Any]]:
    marker = {"type": "ephemeral", "ttl": ttl} if ttl != "5m" else {"type": "ephemeral"}
    return [{"type": "text", "text": SYSTEM, "cache_control": marker}]


def _callers_request(breakpoints: int) -> dict[str, Any]:
    """A second-turn agent request (24 new blocks) carrying `breakpoints` of the caller's own (1 to 4)."""
    tools = [{**TOOLS[0], "cache_control": {"type": "ephemeral"}}]
    first_turn = {"role": "user", "content": [{"type": "text", "text": "Context. " * 50},
                                              {"type": "text", "text": QUESTION}]}
    request: dict[str, Any] = {"tools": tools if breakpoints >= 1 else TOOLS,
                               "system": _marked_system() if breakpoints >= 2 else SYSTEM,
                               "messages": [first_turn, *_agent_turn(12)]}
    if breakpoints >= 3:  # a document in the first turn, marked
        first_turn["content"][0] = {**first_turn["content"][0], "cache_control": {"type": "ephemeral"}}
    if breakpoints >= 4:
        request["cache_control"] = {"type": "ephemeral"}  # automatic caching on top
    return request


@pytest.mark.parametrize("theirs", [1, 2, 3, 4])
def test_callers_with_their_own_breakpoints_never_get_a_fifth(enforce, sim, telemetry, theirs: int) -> None:  # type: ignore[no-untyped-def]
    # The rule wants tools, system, the conversation's end and an intermediate breakpoint: four of its own.
    enforce(policy({"ttl": "5m", "targets": ["tools", "system"], "conversation": {"ttl": "5m"}}))
    client = _client(sim)
    with otel_claude.task("chat"):
        reply = client.messages.create(model=MODEL, max_tokens=100, **_callers_request(theirs))
    assert reply.usage is not None  # the simulator rejects a fifth breakpoint with a 400, as the API does
    markers = _markers(sim.received[-1]["json"])
    added = telemetry.call_spans()[-1].attributes.get("otel_claude.policy.cache_breakpoints_added", 0)
    assert len(markers) == 4 and added == 4 - theirs


def test_a_1h_conversation_breakpoint_never_follows_the_callers_5m_one(enforce, sim, telemetry) -> None:  # type: ignore[no-untyped-def]
    enforce(policy({"conversation": {"ttl": "1h"}}))
    client = _client(sim)
    with otel_claude.task("chat"):
        client.messages.create(model=MODEL, max_tokens=100, system=_marked_system("5m"),
                               messages=[{"role": "user", "content": QUESTION}])
        assert _markers(sim.received[-1]["json"]) == ["5m"]  # a 1h after it would be a 400
        assert "otel_claude.policy.cache_breakpoints_added" not in telemetry.call_spans()[-1].attributes
        client.messages.create(model=MODEL, max_tokens=100, system=_marked_system("1h"),
                               messages=[{"role": "user", "content": QUESTION}])
        assert _markers(sim.received[-1]["json"]) == ["1h", "1h"]


def test_a_5m_breakpoint_never_precedes_the_callers_1h_one(enforce, sim) -> None:  # type: ignore[no-untyped-def]
    enforce(policy({"conversation": {"ttl": "5m"}}))
    newest = [{"type": "text", "text": QUESTION}, {"type": "text", "text": "Thanks!",
                                                   "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    with otel_claude.task("chat"):
        _client(sim).messages.create(model=MODEL, max_tokens=100, system=SYSTEM,
                                     messages=[{"role": "user", "content": QUESTION},
                                               {"role": "assistant", "content": "Sure."},
                                               {"role": "user", "content": newest}])
    assert _markers(sim.received[-1]["json"]) == ["1h"]  # the caller already marked the end, at 1h


def test_shadow_mode_records_the_breakpoints_without_sending_them(enforce, sim, clock, telemetry) -> None:  # type: ignore[no-untyped-def]
    enforce(policy({"conversation": {"ttl": "5m"}}, mode="shadow"))
    usages = _chat(_client(sim), clock, turns=2, think=30)
    assert all(_markers(r["json"]) == [] for r in sim.received)
    assert [u.cache_read_input_tokens for u in usages] == [0, 0]
    spans = telemetry.call_spans()
    assert [s.attributes["otel_claude.policy.cache_breakpoints_added"] for s in spans] == [1, 1]


def test_an_unmarkable_newest_message_falls_back_to_automatic_caching(enforce, sim, clock) -> None:  # type: ignore[no-untyped-def]
    from anthropic.types import TextBlock

    # The newest user message holds only one of the SDK's objects, which the policy does not rewrite (anthropic 2.x
    # passes it through to the request; 0.x turns it into a dict first, which the policy marks).
    newest = {"role": "user", "content": [TextBlock(type="text", text=QUESTION)]}
    enforce(policy({"conversation": {"ttl": "5m"}}))
    with otel_claude.task("chat"):
        first = _client(sim).messages.create(model=MODEL, max_tokens=100, system=SYSTEM, messages=[newest])
    body = sim.received[-1]["json"]
    assert _markers(body) == ["5m"]
    on_block = "cache_control" in body["messages"][-1]["content"][-1]
    assert ("cache_control" in body) != on_block
    if not on_block:
        assert body["cache_control"] == {"type": "ephemeral"}
    assert first.usage.cache_creation_input_tokens == _total(first.usage)
