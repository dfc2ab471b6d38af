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
PREDICTED_BEFORE, PREDICTED_AFTER = 0.0021, 0.0007
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
    evaluate:
      model: {HAIKU}
      share: 0.5
      budget: 1.0
      judge: {{model: {HAIKU}}}
    evidence:
      cost_per_call_before: {PREDICTED_BEFORE}
      cost_per_call_after: {PREDICTED_AFTER}
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
        self.scores: list[float] = []  # feedback given on summarize's Haiku calls
        self.policy_applied = False
        self.started = 0.0
        self.phase_spans: list[int] = []  # finished spans before each phase
        self.spans: list[Any] = []

    def _create(self, model: str, **kwargs: Any) -> Any:
        self.calls[model] += 1
        kwargs.setdefault("messages", [{"role": "user", "content": "Where is my order?"}])
        return self.client.messages.create(model=model, **kwargs)

    def run_once(self) -> None:
        with otel_claude.task("classify"):
            # The policy sends every second classify call to Haiku as a paired evaluation: two verdicts a phase.
            for _ in range(4):
                self._create(SONNET, max_tokens=200)
            self._create(HAIKU, max_tokens=200)
        with otel_claude.task("summarize"):
            # max_tokens=1 is below any simulated answer's length: a truncation.
            cut = self._create(HAIKU, max_tokens=1)
            for score in (0.5, 1.0):  # two users' scores of the same answer: a mean of 0.75 in every phase
                otel_claude.feedback(cut, score)
                self.scores.append(score)
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
        self.sim.set_faults([{"kind": "rate_limit", "count": 1}])
        with otel_claude.task("chat"), pytest.raises(anthropic.RateLimitError):
            self._create(HAIKU, max_tokens=20)
        self.errors["rate_limit_error"] += 1
        # The paired evaluations of this phase's classify calls run in the background: their verdicts and spend
        # must be in before the scrape.
        assert otel_claude.wait_for_evaluations(timeout=60)


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
    workload_started = time.time()
    otel_claude.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, policy=str(policy))
    try:
        with claude_sim.SimServer(latency_scale=0.0) as sim:
            workload = Workload(sim.base_url, sim)
            workload.started = workload_started
            for phase in (1, 2):
                workload.phase_spans.append(len(spans.get_finished_spans()))
                workload.run_once()
                expected = sum(workload.calls.values())
                prometheus.wait_until(
                    lambda n=expected: prometheus.scalar("sum(otel_claude_calls_total)") == n,
                    f"{expected} calls after phase {phase}",
                )
            workload.spans = list(spans.get_finished_spans())
            workload.policy_applied = any(
                (span.attributes or {}).get("otel_claude.policy.version") == POLICY_VERSION for span in workload.spans
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
    # Phase 1 wrote the long system prompt to the cache; phase 2, inside the TTL, read it. The ratio is over all
    # input tokens: uncached input counts in the denominator, so it is below reads / (reads + writes).
    assert prometheus.scalar('sum(otel_claude_cache_tokens_total{otel_claude_cache_kind="write"})') > 0

    def rate(kind: str) -> float:
        value = prometheus.scalar(f'sum(rate(otel_claude_cache_tokens_total{{otel_claude_cache_kind="{kind}"}}'
                                  f'[{WINDOW}]))')
        assert value is not None
        return value

    read, write, uncached = rate("read"), rate("write"), rate("uncached")
    assert read > 0 and uncached > 0
    panel = prometheus.scalar(render(queries["Cache hit ratio"], WINDOW))
    assert panel == pytest.approx(read / (read + write + uncached), rel=1e-3)  # queried a moment apart
    assert panel < read / (read + write)


def test_quality_panels_show_feedback_and_verdicts(scraped_workload: tuple[Prometheus, Workload]) -> None:
    prometheus, workload = scraped_workload
    queries = {q.panel: q.expr for q in QUERIES}
    means = prometheus.query(render(queries["Quality: mean feedback score by task and model"], WINDOW))
    assert [(s["metric"]["otel_claude_task"], s["metric"]["gen_ai_request_model"]) for s in means] == [
        ("summarize", HAIKU)]
    assert float(means[0]["value"][1]) == pytest.approx(sum(workload.scores) / len(workload.scores))
    worse = prometheus.query(render(queries["Quality: paired verdicts where the candidate was worse"], WINDOW))
    assert [(s["metric"]["otel_claude_task"], s["metric"]["otel_claude_evaluation_candidate_model"]) for s in worse] \
        == [("classify", HAIKU)]
    assert 0.0 <= float(worse[0]["value"][1]) <= 1.0


def test_limits_and_errors_panels(scraped_workload: tuple[Prometheus, Workload]) -> None:
    prometheus, workload = scraped_workload
    queries = {q.panel: q.expr for q in QUERIES}
    headroom = prometheus.query(render(queries["Rate-limit headroom by model (remaining / limit)"], WINDOW))
    kinds = {(s["metric"]["gen_ai_request_model"], s["metric"]["otel_claude_limit_kind"]) for s in headroom}
    assert kinds == {(model, kind) for model in workload.calls for kind in ("requests", "input_tokens",
                                                                               "output_tokens")}
    assert all(0.0 < float(s["value"][1]) <= 1.0 for s in headroom)
    # One call in each phase ended in a 429: the rate is that call over the phase's calls.
    rate = prometheus.scalar(render(queries["429 rate (calls that failed rate-limited)"], WINDOW))
    assert rate == pytest.approx(1 / (sum(workload.calls.values()) / 2))


def test_policy_panels_show_the_prediction_and_its_load_time(scraped_workload: tuple[Prometheus, Workload]) -> None:
    prometheus, workload = scraped_workload
    if not workload.policy_applied:
        pytest.skip("otel_claude recorded no policy version: policy enforcement not available")
    queries = [q for q in QUERIES if q.panel == "Realised vs predicted cost per call by task (USD)"]
    predicted = prometheus.query(render(queries[1].expr, WINDOW))
    assert {s["metric"]["otel_claude_policy_prediction"]: float(s["value"][1]) for s in predicted} == {
        "before": PREDICTED_BEFORE, "after": PREDICTED_AFTER}
    (annotation,) = load_dashboard()["annotations"]["list"]
    (loaded,) = prometheus.query(render(annotation["expr"], WINDOW))
    assert loaded["metric"]["otel_claude_policy_version"] == POLICY_VERSION
    assert workload.started * 1000 <= float(loaded["value"][1]) <= time.time() * 1000
