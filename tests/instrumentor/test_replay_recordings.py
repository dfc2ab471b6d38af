"""Replay real recorded API traffic through the instrumented SDK; span attributes must equal the recorded facts.

The expected values are read from the recorded response bodies by this test's own minimal parser (JSON body, or
the SSE events' message_start/message_delta), independent of the instrumentor's code.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import anthropic
import pytest
import yaml
from scripted_server import Reply, ScriptedServer

# ../shared beside the checkout (see the recordings README); absent on machines without it.
VCR = Path(__file__).resolve().parents[3] / "shared" / "recordings" / "vcr"
FOLDERS = ("messages", "prompt_caching", "thinking", "structured_outputs")


def _cassettes() -> list[Path]:
    if not VCR.is_dir():
        return []
    return sorted(p for folder in FOLDERS for p in (VCR / folder).glob("*.yaml"))


def _body_bytes(response: dict[str, Any]) -> bytes:
    body = response["body"]["string"]
    data = body if isinstance(body, bytes) else body.encode()
    encoding = {k.lower(): v for k, v in response["headers"].items()}.get("content-encoding") or []
    return gzip.decompress(data) if "gzip" in encoding else data


def _expected(data: bytes, is_sse: bool) -> dict[str, Any]:
    if not is_sse:
        msg = json.loads(data)
        return {"id": msg["id"], "model": msg["model"], "stop": msg["stop_reason"], "usage": msg["usage"]}
    usage: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for block in data.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" not in lines:
            continue
        event = json.loads(lines["data"])
        if event.get("type") == "message_start":
            msg = event["message"]
            out.update(id=msg["id"], model=msg["model"])
            usage.update({k: v for k, v in msg["usage"].items() if k != "output_tokens"})
        elif event.get("type") == "message_delta":
            usage.update({k: v for k, v in event["usage"].items() if v is not None})
            out["stop"] = event["delta"]["stop_reason"]
    out["usage"] = usage
    return out


def _interactions(path: Path) -> list[tuple[dict[str, Any], bytes, bool]]:
    cassette = yaml.safe_load(path.read_text())
    found = []
    for item in cassette["interactions"]:
        request, response = item["request"], item["response"]
        if "/v1/messages" not in request["uri"] or response["status"]["code"] != 200:
            continue
        headers = {k.lower(): v for k, v in response["headers"].items()}
        is_sse = "text/event-stream" in str(headers.get("content-type"))
        found.append((json.loads(request["body"]), _body_bytes(response), is_sse))
    return found


@pytest.mark.skipif(not _cassettes(), reason="../shared/recordings is not present")
@pytest.mark.parametrize("path", _cassettes(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_replayed_span_matches_recording(instrumented, path: Path) -> None:  # type: ignore[no-untyped-def]
    interactions = _interactions(path)
    assert interactions, "cassette holds no /v1/messages exchange"
    replies = [Reply.raw_sse(data) if sse else Reply(200, {"content-type": "application/json",
                                                            "request-id": "req_rec"}, [data])
               for _, data, sse in interactions]
    with ScriptedServer(replies) as server:
        client = anthropic.Anthropic(base_url=server.base_url, api_key="sk-test", max_retries=0)
        for body, _, sse in interactions:
            body = {**body, "stream": sse}
            if sse:
                events = client.post("/v1/messages", body=body, cast_to=object, stream=True,
                                     stream_cls=anthropic.Stream[anthropic.types.RawMessageStreamEvent])
                for _ in events:
                    pass
            else:
                client.post("/v1/messages", body=body, cast_to=anthropic.types.Message)
    spans = instrumented.call_spans()
    assert len(spans) == len(interactions)
    for span, (body, data, sse) in zip(spans, interactions, strict=True):
        want = _expected(data, sse)
        attrs = span.attributes
        usage = want["usage"]
        total_in = (usage.get("input_tokens") or 0) + (usage.get("cache_read_input_tokens") or 0) + (
            usage.get("cache_creation_input_tokens") or 0)
        assert attrs["gen_ai.request.model"] == body["model"]
        assert attrs["gen_ai.response.id"] == want["id"]
        assert attrs["gen_ai.response.model"] == want["model"]
        assert attrs["gen_ai.response.finish_reasons"] == (want["stop"],)
        assert attrs["gen_ai.usage.output_tokens"] == usage["output_tokens"]
        assert attrs["gen_ai.usage.input_tokens"] == total_in
        assert attrs.get("gen_ai.usage.cache_read.input_tokens", 0) == (usage.get("cache_read_input_tokens") or 0)
        assert attrs.get("gen_ai.usage.cache_creation.input_tokens", 0) == (
            usage.get("cache_creation_input_tokens") or 0)
        if sse:
            assert attrs["otel_claude.stream.complete"] is True
            assert attrs["gen_ai.response.time_to_first_chunk"] > 0
