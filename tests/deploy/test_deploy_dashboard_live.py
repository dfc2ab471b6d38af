"""Every dashboard query, run by a real Prometheus against the metrics of a real instrumented workload.

The workload drives the real SDK over loopback HTTP to the simulator; the instrumentor's metrics are served by
the OpenTelemetry Prometheus exporter (the same name translation as the Collector's `prometheus` exporter);
Prometheus (Debian's, installed by deploy/ci/prometheus.sh) scrapes it every second. The workload runs in two
phases with a scrape confirmed in between, so every series has at least two samples and rates are non-zero.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _stack_files import PROMETHEUS_SCRIPT, dashboard_queries, load_dashboard, render

anthropic = pytest.importorskip("anthropic")
claude_sim = pytest.importorskip("claude_sim")
pytest.importorskip("opentelemetry.exporter.prometheus")

if shutil.which("prometheus") is None:
    pytest.skip("no prometheus binary: run `bash deploy/ci/prometheus.sh install`", allow_module_level=True)
if not hasattr(claude_sim, "SimServer"):
    pytest.skip("claude_sim.SimServer not available yet", allow_module_level=True)

from opentelemetry.exporter.prometheus import PrometheusMetricReader  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from prometheus_client import start_http_server  # noqa: E402

import otel_claude  # noqa: E402

POLICY_VERSION = "dashboard-test-1"
SONNET, HAIKU = "claude-sonnet-4-6", "claude-haiku-4-5"
# Longer than Sonnet's 1024-token cache minimum, so a marked system prompt is written once and then read.
LONG_SYSTEM = "You are a meticulous support assistant. " * 160
WINDOW = "10m"  # longer than the test: every sample of the workload lies inside the rate window
DEADLINE = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        return data["result"] if data["resultType"] == "vector" else [{"metric": {}, "value": data["result"]}]

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        # Polls a condition on Prometheus's state; each round is one scrape interval at most.
        end = time.monotonic() + DEADLINE
        while not condition():
            if time.monotonic() > end:
                raise AssertionError(f"Prometheus never showed {what} within {DEADLINE}s")
            threading.Event().wait(0.25)


@pytest.fixture(scope="module")
def exporter_port() -> Iterator[int]:
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1")
    yield port
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def prometheus(exporter_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    directory = tmp_path_factory.mktemp("prometheus")
    config = directory / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: workload\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{exporter_port}']\n",
        encoding="utf-8",
    )
    listen = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        ["bash", str(PROMETHEUS_SCRIPT), "run", str(config), listen, str(directory / "data")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    client = Prometheus(f"http://{listen}")
    try:
        end = time.monotonic() + DEADLINE
        while True:
            try:
                with urllib.request.urlopen(f"{client.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None:
                    raise AssertionError(f"prometheus exited: {process.stderr.read().decode()}") from None
                if time.monotonic() > end:
                    raise
                threading.Event().wait(0.2)
        yield client
    finally:
        process.terminate()
        process.wait(timeout=30)


def write_policy(path: Path) -> Path:
    path.write_text(
        f"""schema_version: 1
version: "{POLICY_VERSION}"
mode: enforce
rules:
  - task: classify
    max_tokens: 64
""",
        encoding="utf-8",
    )
    return path


class Workload:
    """Calls covering every panel: two models, labelled and unlabelled tasks, streams, truncation, cache
    writes and reads, and errors; counts what it did so the test can check the dashboard against it."""

    def __init__(self, base_url: str, sim: Any) -> None:
        self.client = anthropic.Anthropic(base_url=base_url, api_key="test-key", max_retries=0)
        self.sim = sim
        self.calls: Counter[str] = Counter()  # by model
        self.errors: Counter[str] = Counter()
        self.policy_applied = False

    def _create(self, model: str, **kwargs: Any) -> Any:
        self.calls[model] += 1
        kwargs.setdefault("messages", [{"role": "user", "content": "Where is my order?"}])
        return self.client.messages.create(model=model, **kwargs)

    def run_once(self) -> None:
        with otel_claude.task("classify"):
            self._create(SONNET, max_tokens=200)
            self._create(HAIKU, max_tokens=200)
        with otel_claude.task("summarize"):
            # max_tokens=1 is below any simulated answer's length: a truncation.
            self._create(HAIKU, max_tokens=1)
            system = [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]
            self._create(SONNET, max_tokens=50, system=system)
            self._create(SONNET, max_tokens=50, system=system)
        with otel_claude.task("chat"):
            for _ in self._create(SONNET, max_tokens=2000, stream=True):
                pass
            for _ in self._create(HAIKU, max_tokens=2000, stream=True):
                pass
        self._create(HAIKU, max_tokens=30)  # no task label
        self.sim.set_faults([{"kind": "overloaded", "count": 1}])
        with otel_claude.task("classify"), pytest.raises(anthropic.APIStatusError):
            self._create(SONNET, max_tokens=20)
        self.errors["overloaded_error"] += 1


@pytest.fixture(scope="module")
def scraped_workload(
    prometheus: Prometheus, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Prometheus, Workload]]:
    reader = PrometheusMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    policy = write_policy(tmp_path_factory.mktemp("policy") / "policy.yaml")
    otel_claude.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, policy=str(policy))
    try:
        with claude_sim.SimServer(latency_scale=0.0) as sim:
            workload = Workload(sim.base_url, sim)
            for phase in (1, 2):
                workload.run_once()
                expected = sum(workload.calls.values())
                prometheus.wait_until(
                    lambda n=expected: prometheus.scalar("sum(otel_claude_calls_total)") == n,
                    f"{expected} calls after phase {phase}",
                )
            workload.policy_applied = any(
                (span.attributes or {}).get("otel_claude.policy.version") == POLICY_VERSION
                for span in spans.get_finished_spans()
            )
            yield prometheus, workload
    finally:
        otel_claude.uninstrument()
        meter_provider.shutdown()
        tracer_provider.shutdown()


QUERIES = dashboard_queries(load_dashboard())


@pytest.mark.parametrize("query", QUERIES, ids=[f"{q.panel}:{q.ref_id}" for q in QUERIES])
def test_panel_query_returns_data(scraped_workload: tuple[Prometheus, Workload], query: Any) -> None:
    prometheus, workload = scraped_workload
    if "otel_claude_policy_version" in query.expr and not workload.policy_applied:
        pytest.skip("otel_claude recorded no policy version: policy enforcement not available")
    result = prometheus.query(render(query.expr, WINDOW))
    assert result, f"{query.panel} ({query.ref_id}) returned no series: {query.expr}"
    values = [float(series["value"][1]) for series in result]
    assert any(math.isfinite(v) for v in values), f"{query.panel} ({query.ref_id}) returned only NaN/Inf: {values}"


def test_dashboard_breakdowns_match_the_workload(scraped_workload: tuple[Prometheus, Workload]) -> None:
    prometheus, workload = scraped_workload
    by_model = {
        s["metric"]["gen_ai_request_model"]: float(s["value"][1])
        for s in prometheus.query("sum by (gen_ai_request_model) (otel_claude_calls_total)")
    }
    assert by_model == {model: float(n) for model, n in workload.calls.items()}
    errors = {
        s["metric"]["error_type"]: float(s["value"][1])
        for s in prometheus.query('sum by (error_type) (otel_claude_calls_total{error_type!=""})')
    }
    assert errors == {kind: float(n) for kind, n in workload.errors.items()}


def test_policy_panel_names_the_loaded_policy(scraped_workload: tuple[Prometheus, Workload]) -> None:
    prometheus, workload = scraped_workload
    if not workload.policy_applied:
        pytest.skip("otel_claude recorded no policy version: policy enforcement not available")
    query = next(q for q in QUERIES if q.panel == "Policy version in force")
    versions = prometheus.query(render(query.expr, WINDOW))
    assert [s["metric"]["otel_claude_policy_version"] for s in versions] == [POLICY_VERSION]


def test_panels_show_truncation_and_cache_reads(scraped_workload: tuple[Prometheus, Workload]) -> None:
    prometheus, _ = scraped_workload
    queries = {q.panel: q.expr for q in QUERIES}
    truncation = {
        s["metric"].get("otel_claude_task", ""): float(s["value"][1])
        for s in prometheus.query(render(queries["Truncation rate by task"], WINDOW))
    }
    assert truncation["summarize"] > 0
    assert truncation["chat"] == 0
    # Phase 1 wrote the long system prompt to the cache; phase 2, inside the TTL, only read it. Rates cover what
    # happened after the first scrape, so the panel shows phase 2's ratio: every cached token a read.
    assert prometheus.scalar('sum(otel_claude_cache_tokens_total{otel_claude_cache_kind="write"})') > 0
    assert prometheus.scalar(render(queries["Cache hit ratio"], WINDOW)) == 1.0
