"""Options of instrument(): content capture, provider set-up, price overrides, unknown models, tool runner."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import anthropic
import pytest
from events import MODEL, message, stream_events
from scripted_server import Reply, ScriptedServer

import otel_claude

SECRET_PROMPT = "my account number is 9876-SECRET"
ARGS = {"model": MODEL, "max_tokens": 100, "system": "You are terse.",
        "messages": [{"role": "user", "content": SECRET_PROMPT}]}


def client(server: ScriptedServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="sk-ant-secret-key", max_retries=0)


def test_no_content_by_default(instrumented) -> None:  # type: ignore[no-untyped-def]
    with ScriptedServer([Reply.json(message(text="the completion text")), Reply.sse(stream_events(["x"]))]) as server:
        client(server).messages.create(**ARGS)
        list(client(server).messages.create(**ARGS, stream=True))
    dumped = json.dumps([dict(s.attributes) for s in instrumented.call_spans()])
    assert SECRET_PROMPT not in dumped and "completion text" not in dumped and "sk-ant-secret-key" not in dumped
    assert "gen_ai.input.messages" not in dumped


def test_content_capture_opt_in_is_bounded(telemetry) -> None:  # type: ignore[no-untyped-def]
    otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                           capture_content=True, max_content_chars=200)
    try:
        long_prompt = SECRET_PROMPT + " x" * 1000
        with ScriptedServer([Reply.json(message(text="the completion text")),
                             Reply.sse(stream_events(["streamed ", "words"]))]) as server:
            client(server).messages.create(**{**ARGS, "messages": [{"role": "user", "content": long_prompt}]})
            list(client(server).messages.create(**ARGS, stream=True))
    finally:
        otel_claude.uninstrument()
    plain, streamed = telemetry.call_spans()
    assert SECRET_PROMPT in plain.attributes["gen_ai.input.messages"]
    assert len(plain.attributes["gen_ai.input.messages"]) <= 200 + len("...[truncated]")
    assert "the completion text" in plain.attributes["gen_ai.output.messages"]
    assert plain.attributes["gen_ai.system_instructions"] == json.dumps("You are terse.")
    assert "streamed words" in streamed.attributes["gen_ai.output.messages"]


def test_content_capture_records_what_extra_body_sends(telemetry) -> None:  # type: ignore[no-untyped-def]
    otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                           capture_content=True)
    try:
        with ScriptedServer([Reply.json(message())]) as server:
            client(server).messages.create(**ARGS, extra_body={"system": "Sent through extra_body."})
            sent = server.received[0].body["system"]
    finally:
        otel_claude.uninstrument()
    assert sent == "Sent through extra_body."
    assert telemetry.call_spans()[0].attributes["gen_ai.system_instructions"] == json.dumps(sent)


def test_capture_env_variable(monkeypatch, telemetry) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        with ScriptedServer([Reply.json(message())]) as server:
            client(server).messages.create(**ARGS)
    finally:
        otel_claude.uninstrument()
    assert SECRET_PROMPT in telemetry.call_spans()[0].attributes["gen_ai.input.messages"]


def test_price_override_and_unknown_model(tmp_path: Path, telemetry, caplog) -> None:  # type: ignore[no-untyped-def]
    prices = tmp_path / "prices.csv"
    prices.write_text("model,input,output,cache_write_5m,cache_write_1h,cache_read\n"
                      "claude-sonnet-4-6,1,2,1.25,2,0.1\nacme-model,10,10,10,10,1\n")
    otel_claude.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                           prices=str(prices))
    try:
        with caplog.at_level(logging.WARNING, logger="otel_claude"), ScriptedServer(
            [Reply.json(message(usage={"input_tokens": 1000, "output_tokens": 1000})),
             Reply.json(message(model="mystery-model")), Reply.json(message(model="mystery-model"))]
        ) as server:
            client(server).messages.create(**ARGS)
            for _ in range(2):
                client(server).messages.create(**{**ARGS, "model": "mystery-model"})
    finally:
        otel_claude.uninstrument()
    known, unknown, _ = telemetry.call_spans()
    assert known.attributes["otel_claude.cost_usd"] == pytest.approx((1000 * 1 + 1000 * 2) / 1e6)
    assert "otel_claude.cost_usd" not in unknown.attributes
    warnings = [r for r in caplog.records if "mystery-model" in r.getMessage()]
    assert len(warnings) == 1  # once per model, not per call


def test_tool_runner_calls_are_traced(instrumented) -> None:  # type: ignore[no-untyped-def]
    beta = anthropic.resources.beta.messages.Messages
    if not hasattr(beta, "tool_runner"):
        pytest.skip("this SDK has no beta tool runner")
    from anthropic import beta_tool

    @beta_tool
    def get_weather(city: str) -> str:
        """Weather for a city."""
        return f"sunny in {city}"

    tool_turn = message(stop="tool_use")
    tool_turn["content"] = [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "SF"}}]
    with ScriptedServer([Reply.json(tool_turn), Reply.json(message(text="It is sunny.", msg_id="msg_02"))]) as server:
        runner = client(server).beta.messages.tool_runner(tools=[get_weather], **ARGS)
        final = runner.until_done()
    assert final.content[0].text == "It is sunny."
    spans = instrumented.call_spans()
    assert [s.attributes["gen_ai.response.finish_reasons"] for s in spans] == [("tool_use",), ("end_turn",)]


def _run(code: str, **env: str) -> dict:  # type: ignore[type-arg]
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", **env}, timeout=60, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_sets_up_providers_only_when_the_app_has_none() -> None:
    probe = """
        import json
        from opentelemetry import trace, metrics
        import otel_claude
        {setup}
        otel_claude.instrument()
        provider = trace.get_tracer_provider()
        print(json.dumps({{"tracer": type(provider).__name__,
                          "meter": type(metrics.get_meter_provider()).__name__,
                          "processors": len(provider._active_span_processor._span_processors),
                          "mine": getattr(provider, "mine", False)}}))
    """
    fresh = _run(probe.format(setup=""), OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none")
    assert fresh == {"tracer": "TracerProvider", "meter": "MeterProvider", "processors": 1, "mine": False}
    own = _run(probe.format(setup=(
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "        tp = TracerProvider(); tp.mine = True; trace.set_tracer_provider(tp)")),
        OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none")
    assert own["mine"] is True and own["processors"] == 0  # the application's provider, untouched
