"""examples/minimal.py and examples/auto_instrumented.py, run as programs against the simulator."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from claude_sim.collector import CollectorStub

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PYTHON = sys.executable


def call_spans(sink: CollectorStub) -> list[dict]:
    return [span for span in sink.spans() if span["scope"] == "otel_claude"]


def test_minimal_script_exports_its_call_span_on_exit(example_env: dict[str, str], otlp_sink: CollectorStub) -> None:
    env = {**example_env, "OTEL_SERVICE_NAME": "minimal-example"}
    result = subprocess.run(
        [PYTHON, str(EXAMPLES / "minimal.py"), "Name three primes."],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "the example printed no answer"
    # The process has exited, so whatever it exported has already arrived.
    (span,) = call_spans(otlp_sink)
    assert span["name"] == "chat claude-haiku-4-5"
    assert span["kind"] == "SPAN_KIND_CLIENT"
    assert span["resource"]["service.name"] == "minimal-example"
    assert span["attributes"]["gen_ai.usage.output_tokens"] > 0
    assert span["attributes"]["otel_claude.cost_usd"] > 0
    assert "gen_ai.client.operation.duration" in otlp_sink.metric_names()


def _registered_instrumentor() -> bool:
    return any(
        ep.value == "otel_claude:AnthropicInstrumentor" for ep in entry_points(group="opentelemetry_instrumentor")
    )


def _opentelemetry_instrument() -> str | None:
    beside_python = Path(PYTHON).parent / "opentelemetry-instrument"
    return str(beside_python) if beside_python.exists() else shutil.which("opentelemetry-instrument")


def test_auto_instrumentation_needs_no_code_change(example_env: dict[str, str], otlp_sink: CollectorStub) -> None:
    if not _registered_instrumentor():
        pytest.skip("otel-claude is not pip-installed: its opentelemetry_instrumentor entry point is not registered")
    launcher = _opentelemetry_instrument()
    if launcher is None:
        pytest.skip("opentelemetry-instrument not installed (pip install opentelemetry-distro)")
    source = (EXAMPLES / "auto_instrumented.py").read_text(encoding="utf-8")
    assert "otel_claude" not in source and "opentelemetry" not in source.split('"""', 2)[2]
    env = {
        **example_env,
        "OTEL_SERVICE_NAME": "auto-example",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    result = subprocess.run(
        [launcher, PYTHON, str(EXAMPLES / "auto_instrumented.py"), "first question", "second question"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    spans = call_spans(otlp_sink)
    assert [span["name"] for span in spans] == ["chat claude-haiku-4-5"] * 2
    assert {span["resource"]["service.name"] for span in spans} == {"auto-example"}
    assert len({span["attributes"]["gen_ai.response.id"] for span in spans}) == 2


def test_workload_also_exports_to_a_configured_otlp_endpoint(otlp_sink: CollectorStub, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The demo's advice for Jaeger: with OTEL_EXPORTER_OTLP_ENDPOINT set, the runs' spans reach the Collector too."""
    from claude_sim import SimServer
    from claude_sim.workload import run_workload

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_sink.endpoint)
    with SimServer(scenario="default", seed=2) as sim:
        summary = run_workload(sim.base_url, "default", calls=20, workers=2, seed=2, out=str(tmp_path / "s.jsonl"))
    calls = [s for s in otlp_sink.spans() if s["scope"] == "otel_claude" and s["name"].startswith("chat ")]
    assert len(calls) == summary.overall.calls == 20
    assert all(s["resource"]["service.name"] == "claude-sim-workload" for s in calls)
