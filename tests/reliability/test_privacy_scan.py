"""Nothing the caller sends or receives leaks into telemetry by default; opted-in content is there and bounded.

A small workload (create, stream, helper, async, tools, system prompt, an API error, feedback) runs against the
simulator with marked prompt text and a marked API key. Everything exported is then scanned as text: the OTLP JSON
lines file the spans went to (span events included), the collected metrics, and every log record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from otlp_spans import file_spans, span_attributes
from reliability_support import LogCatcher

import otel_claude
from claude_sim import SimServer

API_KEY = "sk-ant-api03-SECRETKEY-7f3a9c1e5b"
PROMPT = "PRIVATE-PROMPT-q8w7e6 my account number is 4111-1111"
SYSTEM = "PRIVATE-SYSTEM-z1x2c3 you are a bank assistant"
TOOL = "PRIVATE-TOOL-DESCRIPTION-m4n5b6"
MODEL = "claude-haiku-4-5"


@dataclass
class Exported:
    text: str  # spans file + metrics + logs, one searchable blob
    completions: list[str]
    spans: list[dict[str, Any]]


def messages(extra: str = "") -> list[dict[str, Any]]:
    return [{"role": "user", "content": PROMPT + extra}]


def workload(base_url: str) -> list[str]:
    """Calls of every kind; returns the completion texts the caller received."""
    client = anthropic.Anthropic(base_url=base_url, api_key=API_KEY, max_retries=0)
    args: dict[str, Any] = {"model": MODEL, "max_tokens": 60, "system": SYSTEM}
    texts = []
    with otel_claude.task("privacy"):
        reply = client.messages.create(**args, messages=messages())
        texts.append(reply.content[0].text)
        otel_claude.feedback(reply, 1.0, label="good")
        texts.append("".join(e.delta.text for e in client.messages.create(**args, messages=messages(" s"),
                                                                          stream=True)
                             if e.type == "content_block_delta" and e.delta.type == "text_delta"))
        with client.messages.stream(**args, messages=messages(" h")) as stream:
            texts.append("".join(stream.text_stream))
        tools = [{"name": "lookup", "description": TOOL, "input_schema": {"type": "object", "properties": {}}}]
        client.messages.create(**args, messages=messages(" t"), tools=tools)
        texts.append(asyncio.run(_async_call(base_url, args)))
        with pytest.raises(anthropic.NotFoundError):  # the simulator, like the API, 404s an unknown model
            client.messages.create(model="claude-nonexistent-9", max_tokens=10, messages=messages(" e"))
    return [text for text in texts if text]


async def _async_call(base_url: str, args: dict[str, Any]) -> str:
    async with anthropic.AsyncAnthropic(base_url=base_url, api_key=API_KEY, max_retries=0) as client:
        reply = await client.messages.create(**args, messages=messages(" a"))
        return reply.content[0].text


def run_and_export(tmp_path: Path, catcher: LogCatcher, **options: Any) -> Exported:
    path = tmp_path / "spans.jsonl"
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(otel_claude.OTLPJsonFileSpanExporter(path)))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    otel_claude.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, **options)
    try:
        with SimServer(seed=5) as sim:
            completions = workload(sim.base_url)
    finally:
        otel_claude.uninstrument()
    metrics = reader.get_metrics_data()
    tracer_provider.shutdown()
    spans_text = path.read_text()
    spans = file_spans(path)
    logs = "\n".join(catcher.messages())
    return Exported("\n".join([spans_text, metrics.to_json() if metrics else "", logs]), completions, spans)


@pytest.fixture
def all_logs(log_catcher: LogCatcher) -> Iterator[LogCatcher]:
    root = logging.getLogger()
    root.addHandler(log_catcher)
    yield log_catcher
    root.removeHandler(log_catcher)


def test_default_settings_export_no_content_or_key(tmp_path: Path, all_logs: LogCatcher,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    exported = run_and_export(tmp_path, all_logs)
    assert len(exported.spans) >= 7, "every call and the feedback were exported"
    assert len(exported.completions) == 4 and all(len(text) >= 12 for text in exported.completions)
    secrets = [API_KEY, "SECRETKEY", PROMPT, "PRIVATE-", "4111-1111", SYSTEM, TOOL, *exported.completions]
    leaked = [secret for secret in secrets if secret in exported.text]
    assert leaked == []
    assert "sk-ant" not in exported.text


def test_opted_in_content_is_exported_and_clipped(tmp_path: Path, all_logs: LogCatcher) -> None:
    limit = 300
    exported = run_and_export(tmp_path, all_logs, capture_content=True, max_content_chars=limit)
    assert PROMPT in exported.text
    assert SYSTEM in exported.text
    assert any(completion[:40] in exported.text for completion in exported.completions)
    assert API_KEY not in exported.text  # the key is never content
    captured = [value for span in exported.spans
                for key in ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
                            "gen_ai.tool.definitions")
                if (value := span_attributes(span).get(key)) is not None]
    assert captured, "content attributes were written"
    assert max(len(value) for value in captured) <= limit + len("...[truncated]")


def test_opted_in_huge_prompt_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(otel_claude.OTLPJsonFileSpanExporter(path)))
    otel_claude.instrument(tracer_provider=provider, capture_content=True, setup_providers=False)
    try:
        with SimServer(seed=5) as sim:
            client = anthropic.Anthropic(base_url=sim.base_url, api_key=API_KEY, max_retries=0)
            client.messages.create(model=MODEL, max_tokens=20, messages=messages("x" * 400_000))
    finally:
        otel_claude.uninstrument()
    provider.shutdown()
    line = path.read_text()
    assert PROMPT in line
    assert len(line) < 40_000, "a 400 kB prompt must not make a 400 kB span"
