"""One vocabulary: the names in otel_claude.semconv are the names on the spans and metrics, docs/telemetry.md shows
the module's tables, and OTEL_SEMCONV_STABILITY_OPT_IN switches to the newest experimental names."""

from __future__ import annotations

import re
from pathlib import Path

import anthropic
import pytest
from events import message, stream_events
from scripted_server import Reply, ScriptedServer

import otel_claude
from otel_claude import semconv

ROOT = Path(__file__).resolve().parents[2]
CACHED = {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 2000,
          "cache_read_input_tokens": 0}
# top_k through extra_body: anthropic 2.x no longer takes it as a parameter.
ARGS = {"model": "claude-sonnet-4-6", "max_tokens": 100, "extra_body": {"top_k": 5},
        "messages": [{"role": "user", "content": "hi"}]}


def client(server: ScriptedServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0)


@pytest.mark.parametrize("group", sorted(semconv.ATTRIBUTES))
def test_docs_show_the_module_tables(group: str) -> None:
    docs = (ROOT / "docs" / "telemetry.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- semconv:{group} [^\n]*-->\n(.*?)\n<!-- /semconv:{group} -->", docs, re.S)
    assert found is not None, f"docs/telemetry.md has no semconv:{group} table"
    assert found.group(1) == semconv.markdown_table(group), "regenerate with: python -m otel_claude.semconv"


def test_instrumentor_spells_no_attribute_name_outside_the_vocabulary() -> None:
    names = {a.name for table in semconv.ATTRIBUTES.values() for a in table}
    for path in (ROOT / "otel_claude").glob("*.py"):
        if path.name == "semconv.py":
            continue
        text = path.read_text(encoding="utf-8")
        spelled = sorted(name for name in names if f'"{name}"' in text)
        assert not spelled, f"{path.name} spells {spelled}: use the otel_claude.semconv constants"


def test_every_attribute_on_a_span_is_in_the_table(instrumented) -> None:  # type: ignore[no-untyped-def]
    names = {a.name for table in semconv.ATTRIBUTES.values() for a in table}
    with ScriptedServer([Reply.json(message(usage=CACHED)), Reply.sse(stream_events(["a", "b"]))]) as server:
        with otel_claude.task("t"):
            client(server).messages.create(**ARGS)
            list(client(server).messages.create(**ARGS, stream=True))
    for span in instrumented.call_spans():
        assert set(span.attributes) <= names, set(span.attributes) - names
    assert instrumented.call_spans()[0].attributes[semconv.GEN_AI_REQUEST_TOP_K] == 5.0  # a double in the registry


def _metric_names(telemetry) -> set[str]:  # type: ignore[no-untyped-def]
    data = telemetry.reader.get_metrics_data()
    return {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics if m.data.data_points}


def _run(telemetry) -> None:  # type: ignore[no-untyped-def]
    otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        with ScriptedServer([Reply.json(message(usage=CACHED)), Reply.sse(stream_events(["a", "b"]))]) as server:
            client(server).messages.create(**ARGS)
            list(client(server).messages.create(**ARGS, stream=True))
    finally:
        otel_claude.uninstrument()


def test_default_names_are_the_released_conventions(telemetry, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv(semconv.STABILITY_ENV, raising=False)
    _run(telemetry)
    span = telemetry.call_spans()[0]
    assert span.attributes[semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == 2000
    assert span.attributes[semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] == 2000
    names = _metric_names(telemetry)
    assert {"gen_ai.client.operation.duration", "gen_ai.client.token.usage",
            "gen_ai.client.operation.time_to_first_chunk"} <= names
    assert not any(name.startswith("gen_ai.client.inference") for name in names)


def test_latest_experimental_names_when_opted_in(telemetry, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(semconv.STABILITY_ENV, "http, gen_ai_latest_experimental")
    _run(telemetry)
    span = telemetry.call_spans()[0]
    assert semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS not in span.attributes
    assert span.attributes[semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] == 2000
    names = _metric_names(telemetry)
    assert {"gen_ai.client.inference.duration", "gen_ai.client.inference.operation.input_tokens",
            "gen_ai.client.inference.operation.output_tokens", "gen_ai.client.inference.time_to_first_chunk"} <= names
    assert "gen_ai.client.token.usage" not in names and "gen_ai.client.operation.duration" not in names
