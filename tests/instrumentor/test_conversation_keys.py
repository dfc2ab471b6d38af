"""Conversation keys on chat spans: a turn's parent is the previous turn's fingerprint, whatever form the transcript
is resent in, and nothing of the content reaches the span."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from claude_sim import SimServer
from otel_claude._conversation import find_turns

MODEL = "claude-sonnet-4-6"
SYSTEM = "You are a patient tutor who explains one step at a time. " * 10
TOOLS = [{"name": "read_file", "description": "Read a file.",
          "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]
FINGERPRINT = "otel_claude.conversation.fingerprint"
PARENT = "otel_claude.conversation.parent_fingerprint"
TURN = "otel_claude.conversation.turn"
HISTORY = "otel_claude.conversation.history_tokens_estimate"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(seed=5) as server:
        yield server


def _client(sim: SimServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sim.base_url, api_key="sk-test", max_retries=0)


def _attrs(instrumented: Any) -> list[dict[str, Any]]:
    return [dict(span.attributes or {}) for span in instrumented.call_spans()]


def _chat(client: anthropic.Anthropic, questions: list[str], *, as_dicts: bool = False, marker: bool = False,
          answers: list[Any] | None = None, **kwargs: Any) -> list[Any]:
    """A chat: each question sent with the whole transcript, each answer appended as the SDK returned it.

    `answers`: append these replies instead of the ones this chat gets (the same conversation resent another way).
    """
    messages: list[dict[str, Any]] = []
    replies = []
    for number, question in enumerate(questions):
        content: Any = question
        if marker:  # a caller that moves its own breakpoint to the newest message every turn
            for old in messages:
                if isinstance(old["content"], list):
                    old["content"] = [{k: v for k, v in b.items() if k != "cache_control"} if isinstance(b, dict)
                                      else b for b in old["content"]]
            content = [{"type": "text", "text": question, "cache_control": {"type": "ephemeral"}}]
        messages.append({"role": "user", "content": content})
        reply = client.messages.create(**{"model": MODEL, "max_tokens": 200, "system": SYSTEM, **kwargs},
                                       messages=messages)
        if answers is not None:
            reply = answers[number]
        answer: Any = [block.model_dump() for block in reply.content] if as_dicts else reply.content
        messages.append({"role": "assistant", "content": answer})
        replies.append(reply)
    return replies


def test_each_turn_continues_the_previous_one(instrumented, sim) -> None:  # type: ignore[no-untyped-def]
    _chat(_client(sim), ["What is a derivative?", "And an integral?", "How are they related?"])
    spans = _attrs(instrumented)
    assert [s[TURN] for s in spans] == [0, 1, 2]
    assert PARENT not in spans[0] and HISTORY not in spans[0]
    assert spans[1][PARENT] == spans[0][FINGERPRINT]
    assert spans[2][PARENT] == spans[1][FINGERPRINT]
    assert len({s[FINGERPRINT] for s in spans}) == 3
    # What the previous turn sent is what this one can reuse.
    assert spans[1][HISTORY] == spans[0]["otel_claude.input.tokens_estimate"]
    assert spans[2][HISTORY] == spans[1]["otel_claude.input.tokens_estimate"]
    assert spans[2][HISTORY] < spans[2]["otel_claude.input.tokens_estimate"]


def test_keys_do_not_depend_on_how_the_transcript_is_resent(instrumented, sim) -> None:  # type: ignore[no-untyped-def]
    questions = ["Explain recursion.", "Give an example.", "What about base cases?"]
    client = _client(sim)
    replies = _chat(client, questions)  # answers as the SDK's objects, questions as strings
    _chat(client, questions, as_dicts=True, answers=replies)  # answers as plain dicts (a transcript kept as JSON)
    _chat(client, questions, marker=True, answers=replies)  # questions as blocks with the caller's moving breakpoint
    spans = _attrs(instrumented)
    keys = [(s[FINGERPRINT], s.get(PARENT)) for s in spans]
    assert keys[0:3] == keys[3:6] == keys[6:9]
    assert len(set(keys[0:3])) == 3


def test_different_conversations_and_prefixes_differ(instrumented, sim) -> None:  # type: ignore[no-untyped-def]
    client = _client(sim)
    _chat(client, ["hi"])
    _chat(client, ["yo"])  # same length, other words
    _chat(client, ["hi"], system=[{"type": "text", "text": SYSTEM + "Be brief."}])  # same question, other system
    _chat(client, ["hi"], tools=TOOLS)
    spans = _attrs(instrumented)
    assert len({s[FINGERPRINT] for s in spans}) == 4
    assert all(len(s[FINGERPRINT]) == 16 and int(s[FINGERPRINT], 16) >= 0 for s in spans)


def test_a_prefill_is_not_part_of_the_key(instrumented, sim) -> None:  # type: ignore[no-untyped-def]
    client = _client(sim)
    question = {"role": "user", "content": "Name a prime number."}
    client.messages.create(model=MODEL, max_tokens=50, system=SYSTEM, messages=[question])
    client.messages.create(model=MODEL, max_tokens=50, system=SYSTEM,
                           messages=[question, {"role": "assistant", "content": "The answer is"}])
    plain, prefilled = _attrs(instrumented)
    assert prefilled[FINGERPRINT] == plain[FINGERPRINT] and prefilled[TURN] == 0


def test_an_agent_loop_links_every_tool_round(instrumented, sim) -> None:  # type: ignore[no-untyped-def]
    client = _client(sim)
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Summarise the repository."}]
    for round_number in range(3):
        reply = client.messages.create(model=MODEL, max_tokens=300, system=SYSTEM, tools=TOOLS, messages=messages)
        calls = [block for block in reply.content if block.type == "tool_use"]
        assert calls, "the simulator answers a request with tools with a tool call"
        messages.append({"role": "assistant", "content": reply.content})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call.id, "content": f"contents of file {round_number} " * 300}
            for call in calls]})
    spans = _attrs(instrumented)
    assert [s[TURN] for s in spans] == [0, 1, 2]
    assert spans[1][PARENT] == spans[0][FINGERPRINT] and spans[2][PARENT] == spans[1][FINGERPRINT]


def test_no_content_reaches_the_span(instrumented, sim) -> None:  # type: ignore[no-untyped-def]
    secret = "my account number is 99-1234-5678"
    _chat(_client(sim), [secret, "and my PIN is 4321"])
    for attrs in _attrs(instrumented):
        text = repr(attrs)
        assert "99-1234" not in text and "4321" not in text and "tutor" not in text


@pytest.mark.parametrize(("roles", "expected"), [
    (["user"], (0, None, 0)),
    (["user", "assistant", "user"], (2, 0, 1)),
    (["user", "assistant", "user", "assistant"], (2, 0, 1)),  # a prefill after the newest question
    (["user", "user", "assistant", "user", "user"], (4, 1, 1)),  # consecutive user messages
    (["user", "assistant", "user", "assistant", "user"], (4, 2, 2)),
])
def test_turn_structure(roles: list[str], expected: tuple[int, int | None, int]) -> None:
    turns = find_turns([{"role": role, "content": "x"} for role in roles])
    assert turns is not None and (turns.last_user, turns.previous_end, turns.turn) == expected


def test_no_turn_without_a_user_message() -> None:
    assert find_turns([{"role": "assistant", "content": "x"}]) is None
    assert find_turns([]) is None


def test_a_breakpoint_set_on_a_resent_answer_object_is_counted(instrumented, sim) -> None:  # type: ignore[no-untyped-def]
    client = _client(sim)
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Name three rivers."}]
    reply = client.messages.create(model=MODEL, max_tokens=100, system=SYSTEM, messages=messages)
    reply.content[-1].cache_control = {"type": "ephemeral"}  # the SDK sends attributes a model does not declare
    messages += [{"role": "assistant", "content": reply.content}, {"role": "user", "content": "And three lakes?"}]
    client.messages.create(model=MODEL, max_tokens=100, system=SYSTEM, messages=messages)
    assert sim.received[-1]["json"]["messages"][1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert _attrs(instrumented)[-1]["otel_claude.cache.breakpoints"] == 1


def test_the_memo_of_answer_objects_never_serves_a_freed_one() -> None:
    """Answers resent as the SDK's objects are read once per object; an object freed and another made at the same
    address (CPython reuses them at once) must be read afresh."""
    from anthropic.types import TextBlock

    from otel_claude import _conversation

    question = {"role": "user", "content": "Tell me something."}
    seen_ids = set()
    for number in range(300):
        block = TextBlock(type="text", text=f"answer number {number}")
        seen_ids.add(id(block))
        as_object = _conversation.read_messages([question, {"role": "assistant", "content": [block]}, question], None)
        as_dict = _conversation.read_messages(
            [question, {"role": "assistant", "content": [block.model_dump()]}, question], None)
        assert as_object.fingerprint == as_dict.fingerprint and as_object.chars == as_dict.chars
        del block, as_object
    assert len(seen_ids) < 300  # addresses were reused: the check above ran against stale entries
    assert len(_conversation._MODELS) <= _conversation._MAX_MODELS
