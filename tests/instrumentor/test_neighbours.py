"""Living beside another Anthropic instrumentation (OpenInference's; OpenLLMetry's when installed).

otel-claude's `opentelemetry_instrumentor` entry point has a name of its own, so either can be switched off alone
under `opentelemetry-instrument`; when another one is active in the process, one warning says so. Each case runs
in a subprocess (the warning is once per process) with the real instrumentations and the simulator on loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WARNING = "otel_claude: another Anthropic instrumentation is active"
OTHERS = {
    "openinference": ("openinference.instrumentation.anthropic", "OpenInference's"),
    "openllmetry": ("opentelemetry.instrumentation.anthropic", "OpenLLMetry's"),
}
SCRIPT = """
import json, logging, sys
import anthropic, claude_sim, otel_claude
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

records = []
handler = logging.Handler()
handler.emit = records.append
logging.getLogger("otel_claude").addHandler(handler)
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
other = sys.argv[1]
if other == "first":  # the other instrumentation wraps the SDK before otel-claude is installed
    import openinference.instrumentation.anthropic as module
    module.AnthropicInstrumentor().instrument(tracer_provider=provider)
otel_claude.instrument(tracer_provider=provider, meter_provider=MeterProvider(), setup_providers=False)
if other not in ("none", "first"):
    import importlib
    importlib.import_module(other).AnthropicInstrumentor().instrument(tracer_provider=provider)
with claude_sim.SimServer(latency_scale=0) as sim:
    client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=0)
    for _ in range(3):
        client.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
ours = [s for s in exporter.get_finished_spans() if s.instrumentation_scope.name == "otel_claude"]
print(json.dumps({"warnings": [r.getMessage() for r in records if r.levelno >= logging.WARNING],
                  "ours": len(ours), "cost": all(s.attributes.get("otel_claude.cost_usd") for s in ours),
                  "spans": len(exporter.get_finished_spans())}))
"""


def run(other: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    result = subprocess.run([sys.executable, "-c", SCRIPT, other], env=env, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("name", sorted(OTHERS))
def test_one_warning_names_the_other_instrumentation(name: str) -> None:
    module, label = OTHERS[name]
    if not installed(module):
        pytest.skip(f"{module} is not installed")
    seen = run(module)
    if seen["spans"] == seen["ours"]:
        pytest.skip(f"{module} does not instrument this anthropic version (its dependency check declined)")
    assert len(seen["warnings"]) == 1, seen  # once, however many calls
    assert seen["warnings"][0].startswith(f"{WARNING}: {label}")
    assert "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=anthropic" in seen["warnings"][0]
    # otel-claude's own span per call stays whole beside the other one's.
    assert seen["ours"] == 3 and seen["cost"] and seen["spans"] == 6


def test_found_when_it_was_there_before_otel_claude() -> None:
    if not installed(OTHERS["openinference"][0]):
        pytest.skip("openinference-instrumentation-anthropic is not installed")
    seen = run("first")
    if seen["spans"] == seen["ours"]:
        pytest.skip("OpenInference does not instrument this anthropic version (its dependency check declined)")
    assert len(seen["warnings"]) == 1 and seen["warnings"][0].startswith(f"{WARNING}: OpenInference's")


def test_no_warning_alone() -> None:
    seen = run("none")
    assert seen["warnings"] == [] and seen["ours"] == 3 and seen["spans"] == 3


def test_the_entry_point_has_a_name_of_its_own() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["entry-points"]["opentelemetry_instrumentor"] == {"otel_claude": "otel_claude:AnthropicInstrumentor"}


def _opentelemetry_instrument() -> str | None:
    beside = Path(sys.executable).parent / "opentelemetry-instrument"
    return str(beside) if beside.exists() else shutil.which("opentelemetry-instrument")


def test_disabling_anthropic_under_opentelemetry_instrument_keeps_otel_claude() -> None:
    ours = [ep for ep in metadata.entry_points(group="opentelemetry_instrumentor")
            if ep.value == "otel_claude:AnthropicInstrumentor"]
    if [ep.name for ep in ours] != ["otel_claude"]:
        pytest.skip("the installed otel-claude metadata predates the entry point's rename: reinstall the package")
    launcher = _opentelemetry_instrument()
    if launcher is None or not installed(OTHERS["openinference"][0]):
        pytest.skip("needs opentelemetry-instrument and openinference-instrumentation-anthropic")
    script = (
        "import json, anthropic, claude_sim\n"
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "exporter = InMemorySpanExporter()\n"
        "trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))\n"
        "with claude_sim.SimServer(latency_scale=0) as sim:\n"
        "    c = anthropic.Anthropic(base_url=sim.base_url, api_key='test')\n"
        "    c.messages.create(model='claude-haiku-4-5', max_tokens=20, messages=[{'role': 'user', 'content': 'hi'}])\n"
        "print(json.dumps(sorted(s.instrumentation_scope.name for s in exporter.get_finished_spans())))\n"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    base["PYTHONPATH"] = os.pathsep.join([str(REPO), base.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    base.update(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none",
                OTEL_LOGS_EXPORTER="none")

    def scopes(**extra: str) -> tuple[list[str], str]:
        result = subprocess.run([launcher, sys.executable, "-c", script], env={**base, **extra},
                                capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr

    both, err = scopes()
    if "openinference.instrumentation.anthropic" not in both:
        pytest.skip("OpenInference does not instrument this anthropic version (its dependency check declined)")
    # (OpenLLMetry's too, where it is installed: it registers `anthropic` as well.)
    assert {"openinference.instrumentation.anthropic", "otel_claude"} <= set(both) and err.count(WARNING) == 1
    alone, err = scopes(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="anthropic")
    assert alone == ["otel_claude"] and WARNING not in err
    theirs, _ = scopes(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="otel_claude")
    assert "otel_claude" not in theirs and "openinference.instrumentation.anthropic" in theirs
