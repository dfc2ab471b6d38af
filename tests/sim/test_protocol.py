"""The unmodified SDK against the simulator: every response type parses, and the wire matches the real API."""

from __future__ import annotations

import inspect

import anthropic
import pytest
from sim_helpers import cache_split, raw_post, requires, user

from claude_sim import SimServer
from claude_sim._tokens import json_tokens

TOOLS = [{"name": "get_weather", "description": "Weather for a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                           "required": ["city"]}}]


def test_non_streaming_message_parses_with_usage_and_ids(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model="claude-haiku-4-5", max_tokens=300, messages=user("Hi there"))
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message._request_id and message._request_id.startswith("req_")
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.input_tokens == 6  # "Hi there": 8 characters = 2 tokens, plus 4 message framing
    assert message.usage.output_tokens >= 1
    assert cache_split(message.usage) == (0, 0)


def test_alias_resolves_to_dated_snapshot_and_new_ids_echo(client: anthropic.Anthropic) -> None:
    old = client.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=user())
    new = client.messages.create(model="claude-sonnet-4-6", max_tokens=20, messages=user())
    assert old.model == "claude-haiku-4-5-20251001"
    assert new.model == "claude-sonnet-4-6"


@pytest.mark.parametrize("tools", [None, TOOLS])
def test_streaming_and_non_streaming_agree(sim: SimServer, tools: list | None) -> None:
    # Same seed, same request: a fresh server per mode so the prompt cache and id counters line up.
    kwargs = {"model": "claude-sonnet-4-6", "max_tokens": 400, "messages": user("What is the weather in Paris?")}
    if tools:
        kwargs["tools"] = tools
    results = []
    for stream in (False, True):
        with SimServer(seed=5) as fresh:
            client = anthropic.Anthropic(base_url=fresh.base_url, api_key="test", max_retries=0)
            if stream:
                with client.messages.stream(**kwargs) as events:
                    message = events.get_final_message()
            else:
                message = client.messages.create(**kwargs)
        results.append(message)
    plain, streamed = results
    assert [block.model_dump(exclude_none=True) for block in plain.content] == \
        [block.model_dump(exclude_none=True, exclude={"parsed_output"}) for block in streamed.content]
    assert plain.usage.output_tokens == streamed.usage.output_tokens
    assert plain.usage.input_tokens == streamed.usage.input_tokens
    assert plain.stop_reason == streamed.stop_reason
    if tools:
        assert plain.stop_reason == "tool_use"
        assert plain.content[-1].input == {"city": "sim", "days": 1}


def test_raw_stream_events_order_and_cumulative_usage(client: anthropic.Anthropic) -> None:
    stream = client.messages.create(model="claude-haiku-4-5", max_tokens=200, messages=user("Tell me"), stream=True,
                                    tools=TOOLS)
    events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert "input_json_delta" in [getattr(event.delta, "type", None) for event in events if event.type ==
                                  "content_block_delta"]
    start_usage = events[0].message.usage
    final_usage = events[-2].usage
    assert start_usage.output_tokens == 1  # a placeholder, as in the API's recordings
    assert final_usage.output_tokens > 1
    assert final_usage.input_tokens == start_usage.input_tokens


def test_thinking_blocks_stream_with_signature(client: anthropic.Anthropic) -> None:
    if "thinking" not in inspect.signature(client.messages.stream).parameters:
        pytest.skip("this anthropic version has no thinking parameter")
    kwargs = {"model": "claude-sonnet-4-6", "max_tokens": 3000, "messages": user("Think"),
              "thinking": {"type": "enabled", "budget_tokens": 1024}}
    with client.messages.stream(**kwargs) as stream:
        deltas = [event.delta.type for event in stream if event.type == "content_block_delta"]
        message = stream.get_final_message()
    assert message.content[0].type == "thinking"
    assert message.content[0].signature
    assert "thinking_delta" in deltas and "signature_delta" in deltas
    plain = client.messages.create(**kwargs)
    assert plain.content[0].thinking and plain.content[0].signature


def test_max_tokens_truncates(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model="claude-haiku-4-5", max_tokens=3, messages=user())
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3
    assert len(message.content[0].text) == 12


@pytest.mark.asyncio
async def test_async_client_and_stream(sim: SimServer) -> None:
    client = anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="test", max_retries=0)
    async with client.messages.stream(model="claude-haiku-4-5", max_tokens=100, messages=user()) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == final.content[0].text and text
    await client.close()


def test_count_tokens_matches_message_input(client: anthropic.Anthropic) -> None:
    requires(client, "messages.count_tokens")
    kwargs = {"model": "claude-sonnet-4-6", "messages": user("x" * 400), "system": "y" * 80, "tools": TOOLS}
    counted = client.messages.count_tokens(**kwargs)
    message = client.messages.create(max_tokens=10, **kwargs)
    assert counted.input_tokens == message.usage.input_tokens
    assert counted.input_tokens == 100 + 4 + 20 + json_tokens(TOOLS[0])  # text, framing, system, tool (see _tokens)


def test_models_list_and_retrieve(client: anthropic.Anthropic) -> None:
    requires(client, "models")
    page = client.models.list(limit=5)
    assert len(page.data) == 5 and page.has_more
    ids = [model.id for model in client.models.list(limit=100)]
    assert "claude-sonnet-4-6" in ids and len(ids) == len(set(ids))
    model = client.models.retrieve("claude-haiku-4-5")
    assert model.display_name == "Claude Haiku 4.5"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-nonexistent-9")


def test_message_batches_round_trip(client: anthropic.Anthropic) -> None:
    requires(client, "messages.batches")
    batch = client.messages.batches.create(requests=[
        {"custom_id": "a", "params": {"model": "claude-haiku-4-5", "max_tokens": 50, "messages": user()}},
        {"custom_id": "b", "params": {"model": "claude-unknown-1", "max_tokens": 50, "messages": user()}},
    ])
    assert batch.id.startswith("msgbatch_")
    retrieved = client.messages.batches.retrieve(batch.id)
    assert retrieved.processing_status == "ended"
    assert retrieved.request_counts.succeeded == 1 and retrieved.request_counts.errored == 1
    results = {entry.custom_id: entry.result for entry in client.messages.batches.results(batch.id)}
    assert results["a"].type == "succeeded"
    assert results["a"].message.usage.service_tier == "batch"
    assert results["b"].type == "errored"
    assert batch.id in [item.id for item in client.messages.batches.list()]


def test_batch_in_progress_until_clock_passes() -> None:
    from sim_helpers import FakeClock

    clock = FakeClock()
    with SimServer(clock=clock, batch_seconds=60) as sim:
        client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=0)
        requires(client, "messages.batches")
        batch = client.messages.batches.create(requests=[
            {"custom_id": "a", "params": {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": user()}}])
        assert batch.processing_status == "in_progress" and batch.results_url is None
        clock.advance(61)
        assert client.messages.batches.retrieve(batch.id).processing_status == "ended"


def test_headers_request_id_and_rate_limits(sim: SimServer, client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=10, messages=user())
    headers = raw.headers
    assert headers["request-id"].startswith("req_")
    assert int(headers["anthropic-ratelimit-requests-limit"]) == 4000
    assert int(headers["anthropic-ratelimit-requests-remaining"]) < 4000
    assert headers["anthropic-ratelimit-input-tokens-reset"].endswith("Z")
    assert raw.parse().id.startswith("msg_")


def test_both_auth_styles_and_versions_accepted(sim: SimServer) -> None:
    body = {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": user()}
    for headers in ({"x-api-key": "k", "anthropic-version": "2023-06-01"},
                    {"x-api-key": None, "authorization": "Bearer k", "anthropic-version": "2026-10-21"}):
        status, _, payload = raw_post(sim.base_url, "/v1/messages", body, headers)
        assert status == 200, payload


def test_missing_key_is_a_real_401(sim: SimServer) -> None:
    status, headers, payload = raw_post(sim.base_url, "/v1/messages", {}, {"x-api-key": None})
    assert status == 401 and payload["error"]["type"] == "authentication_error"
    assert payload["request_id"] == headers["request-id"]


@pytest.mark.parametrize(("body", "headers", "status", "fragment"), [
    ({"model": "claude-haiku-4-5", "messages": user()}, {}, 400, "max_tokens: Field required"),
    ({"model": "claude-nope-1", "max_tokens": 5, "messages": user()}, {}, 404, "model: claude-nope-1"),
    ({"model": "claude-haiku-4-5", "max_tokens": 5, "messages": user(), "temperature": 0.5},
     {"anthropic-version": "2026-10-21"}, 400, "temperature"),
    ({"model": "claude-haiku-4-5", "max_tokens": 5, "messages": user()}, {"anthropic-version": "2022-01-01"}, 400,
     "anthropic-version"),
    ({"model": "claude-haiku-4-5", "max_tokens": 999999, "messages": user()}, {}, 400, "maximum allowed"),
    ({"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "text", "text": str(i), "cache_control": {"type": "ephemeral"}} for i in range(5)]}]}, {}, 400,
     "A maximum of 4 blocks with cache_control"),
    ({"model": "claude-haiku-4-5", "max_tokens": 5, "messages": user("x" * 900_000)}, {}, 400, "prompt is too long"),
])
def test_validation_errors_like_the_api(sim: SimServer, body: dict, headers: dict, status: int,
                                        fragment: str) -> None:
    got, response_headers, payload = raw_post(sim.base_url, "/v1/messages", body, headers)
    assert got == status
    assert payload["type"] == "error" and fragment in payload["error"]["message"]
    assert response_headers["x-should-retry"] == "false"


def test_temperature_accepted_on_old_version(sim: SimServer) -> None:
    body = {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": user(), "temperature": 0.5}
    assert raw_post(sim.base_url, "/v1/messages", body)[0] == 200


def test_oversize_request_is_413() -> None:
    with SimServer(max_request_bytes=2000) as sim:
        status, _, payload = raw_post(sim.base_url, "/v1/messages",
                                      {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": user("x" * 5000)})
    assert status == 413 and payload["error"]["type"] == "request_too_large"


def test_received_records_requests(sim: SimServer, client: anthropic.Anthropic) -> None:
    sim.clear_received()
    client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=user(),
                           extra_headers={"x-sim-note": "hello"})
    assert len(sim.received) == 1
    entry = sim.received[0]
    assert entry["method"] == "POST" and entry["path"] == "/v1/messages"
    assert entry["headers"]["x-sim-note"] == "hello"
    assert entry["json"]["max_tokens"] == 5


def test_answers_are_deterministic_per_seed() -> None:
    texts = []
    for seed in (3, 3, 4):
        with SimServer(seed=seed) as sim:
            client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=0)
            texts.append(client.messages.create(model="claude-haiku-4-5", max_tokens=500, messages=user()).usage
                         .output_tokens)
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]
