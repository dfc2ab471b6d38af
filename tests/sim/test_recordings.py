"""The simulator's SSE bytes against real recorded API streams (skipped without ../shared/recordings)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import anthropic
import pytest

from claude_sim import SimServer

RECORDINGS = Path(__file__).resolve().parents[2].parent / "shared" / "recordings"
pytestmark = pytest.mark.skipif(not RECORDINGS.is_dir(), reason="shared recordings not available")

# Some recorded files end without the final blank line.
FRAME = re.compile(r"event: (?P<event>[a-z_]+)\ndata: (?P<data>.*)(?:\n\n|\n?\Z)")


def frames(body: str) -> list[tuple[str, str]]:
    return [(m["event"], m["data"]) for m in FRAME.finditer(body)]


def grammar(events: list[str]) -> str:
    """The event sequence with repeated deltas collapsed, e.g. start,block_start,ping,delta,block_stop,..."""
    collapsed: list[str] = []
    for event in events:
        if not collapsed or collapsed[-1] != event or event != "content_block_delta":
            collapsed.append(event)
    return ",".join(collapsed)


def recorded_streams() -> list[str]:
    bodies = []
    for path in sorted((RECORDINGS / "sdk" / "snapshots").rglob("*.json")):
        for exchange in json.loads(path.read_text(encoding="utf-8")):
            body = exchange["response"]["body"]
            if isinstance(body, str) and body.startswith("event: message_start"):
                bodies.append(body)
    for path in sorted((RECORDINGS / "sdk" / "streaming").glob("*_response.txt")):
        bodies.append(path.read_text(encoding="utf-8"))
    return bodies


def simulated_stream(tools: bool) -> str:
    kwargs = {"model": "claude-haiku-4-5", "max_tokens": 300, "messages": [{"role": "user", "content": "weather?"}],
              "stream": True}
    if tools:
        kwargs["tools"] = [{"name": "get_weather", "description": "w",
                            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    with SimServer(seed=3) as sim:
        client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=0)
        with client.messages.with_streaming_response.create(**kwargs) as response:
            assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
            assert response.headers["cache-control"] == "no-cache"
            return "".join(response.iter_text())


def test_event_grammar_matches_recordings() -> None:
    recorded = {grammar([event for event, _ in frames(body)]) for body in recorded_streams()}
    assert recorded, "no recorded streams found"
    for tools in (False, True):
        ours = grammar([event for event, _ in frames(simulated_stream(tools))])
        assert ours in recorded, f"{ours} not among recorded shapes {sorted(recorded)}"


def test_padding_ping_and_message_start_fields_match_recordings() -> None:
    recorded = recorded_streams()
    ours = frames(simulated_stream(True))
    padded = re.compile(r"^\{.*\S( *)\}$")
    assert any(padded.match(data)[1] for _, data in ours if padded.match(data))  # some frames carry padding
    recorded_ping = next(data for body in recorded for event, data in frames(body) if event == "ping")
    assert dict(ours)["ping"] == recorded_ping
    recorded_start = json.loads(dict(frames(recorded[0]))["message_start"])["message"]
    our_start = json.loads(dict(ours)["message_start"])["message"]
    assert set(recorded_start) == set(our_start)
    assert set(recorded_start["usage"]) == set(our_start["usage"])
    recorded_delta = json.loads(next(d for body in recorded for e, d in frames(body) if e == "message_delta"
                                     and "cache_read_input_tokens" in d))
    assert set(json.loads(dict(ours)["message_delta"])["usage"]) == set(recorded_delta["usage"])


def test_non_streaming_body_has_the_recorded_fields() -> None:
    path = next((RECORDINGS / "sdk" / "snapshots" / "parse").rglob("bd7029d5-*.json"))
    recorded = json.loads(path.read_text(encoding="utf-8"))[0]["response"]["body"]
    with SimServer() as sim:
        client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=0)
        raw = client.messages.with_raw_response.create(model="claude-sonnet-4-5", max_tokens=50,
                                                       messages=[{"role": "user", "content": "x"}])
        ours = json.loads(raw.http_response.text)
    assert set(ours) == set(recorded)
    assert set(ours["usage"]) == set(recorded["usage"])
    assert ours["model"] == recorded["model"]  # the same alias resolution: claude-sonnet-4-5 -> dated snapshot
