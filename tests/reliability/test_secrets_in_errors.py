"""No prompt, key or credential reaches telemetry or logs, whatever an error body contains.

A loopback server plays a proxy that echoes the request in its errors: the body and the headers (`x-api-key` on
anthropic 0.x, `authorization: Bearer` on 2.x), as a JSON envelope, as raw text, as the bare request JSON, cut
short, or inside a mid-stream `error` event, with 400, 422 and 500. Every kind of call runs against it with
default settings; then everything exported (the OTLP JSON spans file: attributes, status, events; the metrics)
and everything logged is scanned for the secrets in any encoding the echo used.

A policy URL's token and password likewise never reach a log line, whatever goes wrong with it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from otlp_spans import file_spans
from reliability_support import LogCatcher
from scripted_server import Received, Reply, ScriptedServer

import otel_claude
from otel_claude._policy_source import UrlSource

API_KEY = "sk-ant-api03-ECHOEDKEY9f8e7d6c5b4a"
PROMPT = "CONFIDENTIALPROMPT my card is 4000-1234-5678-9010"
SYSTEM = "CONFIDENTIALSYSTEM you work for the bank"
MODEL = "claude-haiku-4-5"
# What must never be found, and fragments of it that a partial or escaped echo would still carry.
SECRETS = [API_KEY, "ECHOEDKEY", PROMPT, "CONFIDENTIAL", "4000-1234", SYSTEM, "Bearer sk-"]


def _echo(request: Received) -> str:
    return json.dumps({"headers": request.headers, "body": request.body})


def envelope(status: int) -> Callable[[Received], Reply]:
    """The API's error envelope, its message the whole request (as JSON-escaped text)."""
    return lambda request: Reply.json(
        {"type": "error", "error": {"type": "invalid_request_error", "message": f"bad request: {_echo(request)}"}},
        status)


def raw_text(status: int) -> Callable[[Received], Reply]:
    """A gateway's plain-text page quoting the request verbatim."""
    def reply(request: Received) -> Reply:
        lines = [f"{name}: {value}" for name, value in request.headers.items()]
        text = "upstream said no\n" + "\n".join(lines) + "\n\n" + json.dumps(request.body)
        return Reply(status, {"content-type": "text/plain"}, [text.encode()])

    return reply


def bare_request(status: int) -> Callable[[Received], Reply]:
    """The request JSON sent back as the body, headers folded into it, and the error type set to the prompt."""
    def reply(request: Received) -> Reply:
        body = dict(request.body) if isinstance(request.body, dict) else {}
        body["error"] = {"type": PROMPT, "message": API_KEY}
        body["echoed_headers"] = request.headers
        return Reply.json(body, status)

    return reply


def cut_short(status: int) -> Callable[[Received], Reply]:
    """Half of an echo: invalid JSON that starts like an envelope."""
    def reply(request: Received) -> Reply:
        text = json.dumps({"type": "error", "error": {"type": "api_error", "message": _echo(request)}})
        return Reply(status, {"content-type": "application/json"}, [text[: len(text) // 2].encode()])

    return reply


def stream_error(_status: int) -> Callable[[Received], Reply]:
    """A stream that starts and then fails with an error event echoing the request."""
    def reply(request: Received) -> Reply:
        if not (isinstance(request.body, dict) and request.body.get("stream")):
            return envelope(500)(request)
        start = {"type": "message_start", "message": {
            "id": "msg_echo", "type": "message", "role": "assistant", "model": MODEL, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 1}}}
        error = {"type": "error", "error": {"type": "overloaded_error", "message": _echo(request)}}
        return Reply.sse([("message_start", start), ("error", error)])

    return reply


ECHOES = {"envelope": envelope, "raw text": raw_text, "bare request": bare_request, "cut short": cut_short,
          "stream error event": stream_error}


def calls(base_url: str) -> int:
    """Every kind of call; each fails. Returns how many were made."""
    client = anthropic.Anthropic(base_url=base_url, api_key=API_KEY, max_retries=0, timeout=120.0)
    args: dict[str, Any] = {"model": MODEL, "max_tokens": 50, "system": SYSTEM,
                            "messages": [{"role": "user", "content": PROMPT}]}
    attempts: list[Callable[[], Any]] = [
        lambda: client.messages.create(**args),
        lambda: list(client.messages.create(**args, stream=True)),
        lambda: client.messages.stream(**args).__enter__().get_final_message(),
        lambda: client.messages.with_raw_response.create(**args).parse(),
        lambda: client.messages.count_tokens(model=MODEL, system=SYSTEM, messages=args["messages"]),
        lambda: asyncio.run(_async_call(base_url, args)),
    ]
    for attempt in attempts:
        with otel_claude.task("echo"), pytest.raises(anthropic.APIError):
            attempt()
    return len(attempts)


async def _async_call(base_url: str, args: dict[str, Any]) -> Any:
    async with anthropic.AsyncAnthropic(base_url=base_url, api_key=API_KEY, max_retries=0, timeout=120.0) as client:
        return await client.messages.create(**args)


def encodings(secret: str) -> set[str]:
    """The forms an echo may give a secret: as is, JSON-escaped, URL-encoded, base64."""
    return {secret, json.dumps(secret)[1:-1], urllib.parse.quote(secret), base64.b64encode(secret.encode()).decode()}


@pytest.fixture
def all_logs(log_catcher: LogCatcher) -> Iterator[LogCatcher]:
    root = logging.getLogger()
    root.addHandler(log_catcher)
    yield log_catcher
    root.removeHandler(log_catcher)


@pytest.mark.parametrize("status", [400, 422, 500])
@pytest.mark.parametrize("echo", list(ECHOES))
def test_echoed_requests_in_error_bodies_leak_nowhere(tmp_path: Path, all_logs: LogCatcher, echo: str, status: int,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    path = tmp_path / "spans.jsonl"
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(otel_claude.OTLPJsonFileSpanExporter(path)))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    otel_claude.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, setup_providers=False)
    try:
        with ScriptedServer(ECHOES[echo](status)) as server:
            made = calls(server.base_url)
            echoed = [_echo(request) for request in server.received]
    finally:
        otel_claude.uninstrument()
    metrics = reader.get_metrics_data()
    tracer_provider.shutdown()
    spans_text = path.read_text()
    spans = file_spans(path)
    # The server did echo the secrets, and every call failed into an error span.
    assert any(API_KEY in text for text in echoed) and any(PROMPT in text for text in echoed)
    assert len(spans) == made
    assert all(span["status"]["code"] == 2 and span["status"].get("message") for span in spans)
    blob = "\n".join([spans_text, metrics.to_json() if metrics else "", *all_logs.messages()])
    leaked = sorted({form for secret in SECRETS for form in encodings(secret) if form in blob})
    assert leaked == []
    # What the status does say: the error type, and the HTTP status where there was one.
    messages = {span["status"]["message"] for span in spans}
    assert all(len(message) <= 64 for message in messages), messages
    if echo == "envelope":
        assert f"invalid_request_error (HTTP {status})" in messages


class PolicyUrlServer:
    """Serves a policy (or a broken one) and remembers the query and authorization each request carried."""

    def __init__(self, body: bytes) -> None:
        self.seen: list[tuple[str, str | None]] = []

        def reply(request: Received) -> Reply:
            self.seen.append((request.path, request.headers.get("authorization")))
            return Reply(200, {"content-type": "application/yaml"}, [body])

        self.server = ScriptedServer(reply)

    def __enter__(self) -> PolicyUrlServer:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)


class ManualUrlSource(UrlSource):
    def _poll(self, stop: object) -> None:
        pass


TOKEN, PASSWORD = "TOKENVALUE0a1b2c3d", "PASSWORDVALUE9z8y7x"


@pytest.mark.parametrize("body", [b"schema_version: 1\nversion: url-ok\nrules: []\n",
                                  b"schema_version: 1\nversion: bad\nrules: [{task: a, model: gpt-4}]\n",
                                  b"\xfb\xfc not text"])
def test_policy_url_credentials_never_logged(body: bytes, all_logs: LogCatcher) -> None:
    with PolicyUrlServer(body) as server:
        host = server.server.base_url.removeprefix("http://")
        source = ManualUrlSource(f"http://ops:{PASSWORD}@{host}/policy.yaml?token={TOKEN}&env=prod",
                                 reload_interval=3600)
        source.refresh()
    # The credentials were used: the token in the query, the userinfo as Basic authorization.
    path, authorization = server.seen[0]
    assert f"token={TOKEN}" in path
    assert authorization == "Basic " + base64.b64encode(f"ops:{PASSWORD}".encode()).decode()
    logged = "\n".join(all_logs.messages()) + (source.last_error or "")
    assert logged, "the source logged what it did"
    assert TOKEN not in logged and PASSWORD not in logged and "ops:" not in logged
    assert f"http://{host}/policy.yaml" in logged
    if body.startswith(b"schema_version: 1\nversion: url-ok"):
        assert source.current() is not None and source.current().version == "url-ok"
    else:
        assert source.last_error is not None and source.last_error.startswith(f"http://{host}/policy.yaml: ")


@pytest.mark.parametrize("url", [f"http://ops:{PASSWORD}@127.0.0.1:9/p.yaml?token={TOKEN}",
                                 f"http://ops:{PASSWORD}@127.0.0.1:notaport/p.yaml?token={TOKEN}",
                                 f"https://ops:{PASSWORD}@[::1/p.yaml?token={TOKEN}"])
def test_unreachable_policy_url_credentials_never_logged(url: str, all_logs: LogCatcher) -> None:
    try:
        source = ManualUrlSource(url, reload_interval=3600)
        source.refresh()
        error = source.last_error or ""
    except ValueError as err:  # a URL so broken it cannot even be split: the caller's own mistake, at start
        error = str(err)
    logged = "\n".join(all_logs.messages()) + error
    assert error
    assert TOKEN not in logged and PASSWORD not in logged
