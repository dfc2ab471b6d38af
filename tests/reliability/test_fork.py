"""Pre-fork servers: a process instruments (with a hot-reloaded policy and an OTLP JSON file exporter), then forks
workers while its own threads are mid-call and mid-export, as gunicorn, uwsgi and celery prefork do.

Each child makes its own calls, flushes, reads its metrics, waits for the policy version the parent publishes after
the fork, and reports over a pipe. Every wait is bounded (a hung child is killed and reported as hung), and the
loop forks enough children to catch a race that hits one fork in twenty.
"""

from __future__ import annotations

import json
import os
import select
import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import pytest
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import DropAggregation, View
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from otlp_spans import file_spans, span_attributes

import otel_claude
from claude_sim import SimServer

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

FORKS = 48
CHILD_CALLS = 5
CALLER_THREADS = 3
CHILD_WAIT_S = 120.0  # a child that has not reported by then is hung (healthy ones take well under a second)
POLICY_CHECKS = 400  # checks a child may wait for the parent's new policy (0.05 s apart when healthy)
ARGS: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 20,
                        "messages": [{"role": "user", "content": "hello"}]}


def client(base_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key="sk-test", max_retries=0, timeout=120.0)


def publish(path: Path, version: str) -> None:
    """Write a policy the recommended way: a temporary file renamed over the old one, dated as settled."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"schema_version: 1\nversion: {version}\nrules: []\n")
    os.utime(tmp, (1_000_000_000, 1_000_000_000))
    os.replace(tmp, path)


@dataclass
class Parent:
    base_url: str
    tracer_provider: TracerProvider
    reader: InMemoryMetricReader
    spans_path: Path
    policy_path: Path


def child_calls(parent: Parent, number: int) -> None:
    with otel_claude.task(f"child-{number}"):
        api = client(parent.base_url)
        for _ in range(CHILD_CALLS):
            api.messages.create(**ARGS)


def child_flushes(parent: Parent, number: int) -> dict[str, Any]:
    child_calls(parent, number)
    return {"flushed": parent.tracer_provider.force_flush(timeout_millis=60_000)}


def child_counts(parent: Parent, number: int) -> dict[str, Any]:
    child_calls(parent, number)
    data = parent.reader.get_metrics_data()
    return {"calls": sum(point.value for rm in data.resource_metrics for sm in rm.scope_metrics
                         for metric in sm.metrics if metric.name == "otel_claude.calls"
                         for point in metric.data.data_points)}


def policy_after_waiting(version: str) -> str:
    """The version in force once it is `version`, or after POLICY_CHECKS checks, or when nothing polls for 30 s."""
    source = otel_claude.AnthropicInstrumentor._hooks.policy.source
    checks = 0
    while source.current().version != version and checks < POLICY_CHECKS:
        if not source.wait_checked(source.generation, timeout=30):
            break
        checks += 1
    return source.current().version


def child_policy(parent: Parent, number: int) -> dict[str, Any]:
    return {"policy": policy_after_waiting(f"after-fork-{number}")}


def fork_child(parent: Parent, number: int, child: Callable[[Parent, int], dict[str, Any]],
               before_wait: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Fork, run `child` in the child, and return its report (or how it failed), never waiting unbounded."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.close(read_end)
            report = child(parent, number)
            code = 0
        except BaseException:
            report = {"error": traceback.format_exc()}
        try:
            os.write(write_end, json.dumps(report).encode())
        finally:
            os._exit(code)
    os.close(write_end)
    before_wait()
    try:
        chunks = []
        while True:
            ready, _, _ = select.select([read_end], [], [], CHILD_WAIT_S)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {"hung": True}
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
    _, status = os.waitpid(pid, 0)  # the child has closed its end: it is exiting
    report = json.loads(b"".join(chunks) or b"{}")
    report["exit"] = os.waitstatus_to_exitcode(status)
    return report


@pytest.fixture
def busy_parent(tmp_path: Path) -> Iterator[Parent]:
    """An instrumented process whose threads call the API continuously, exporting through a batch processor (its own
    thread) and a simple processor (on the calling threads), both into OTLP JSON files."""
    spans_path, simple_path = tmp_path / "spans.jsonl", tmp_path / "simple.jsonl"
    policy_path = tmp_path / "policy.yaml"
    publish(policy_path, "before-fork")
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(otel_claude.OTLPJsonFileSpanExporter(spans_path),
                                                          schedule_delay_millis=1))
    tracer_provider.add_span_processor(SimpleSpanProcessor(otel_claude.OTLPJsonFileSpanExporter(simple_path)))
    # Histograms are dropped: the OpenTelemetry SDK's own aggregation locks are not fork-safe (its problem, not the
    # one under test), and a child collecting a histogram a parent thread was recording into could hang on them.
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader],
                                   views=[View(instrument_type=Histogram, aggregation=DropAggregation())])
    stop = threading.Event()
    with SimServer(seed=3, record=False) as sim:
        otel_claude.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider,
                               policy=str(policy_path), policy_options={"reload_interval": 0.05})
        parent_calls = [0] * CALLER_THREADS
        warm = threading.Barrier(CALLER_THREADS + 1)

        def caller(slot: int) -> None:
            api = client(sim.base_url)
            with otel_claude.task("parent"):
                for _ in range(3):
                    api.messages.create(**ARGS)
                warm.wait(CHILD_WAIT_S)
                while not stop.is_set():
                    api.messages.create(**ARGS)
                    parent_calls[slot] += 1

        threads = [threading.Thread(target=caller, args=(n,), daemon=True) for n in range(CALLER_THREADS)]
        for thread in threads:
            thread.start()
        # Python's per-module import locks are not fork-safe: a thread importing lazily during its first call would
        # leave one held in the child. Services fork in steady state; so do the tests, after the first calls.
        warm.wait(CHILD_WAIT_S)
        try:
            yield Parent(sim.base_url, tracer_provider, reader, spans_path, policy_path)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=CHILD_WAIT_S)
            otel_claude.uninstrument()
            tracer_provider.shutdown()
            meter_provider.shutdown()
        assert min(parent_calls) > 0, "the parent's threads were calling while children forked"


def test_forked_workers_never_inherit_a_held_lock(busy_parent: Parent) -> None:
    """Issue 11.1: the child's calls and its flush complete, however the fork fell among the parent's exports."""
    reports = [fork_child(busy_parent, number, child_flushes) for number in range(FORKS)]
    errors = [r["error"] for r in reports if "error" in r]
    assert not errors, errors[0]
    hung = [n for n, r in enumerate(reports) if r.get("hung")]
    assert not hung, f"{len(hung)} of {FORKS} children hung (a lock held at the fork): {hung}"
    assert all(r["exit"] == 0 and r["flushed"] is True for r in reports), reports
    # Every child's spans reached the shared file, whole: one JSON document per line, none interleaved.
    busy_parent.tracer_provider.force_flush()
    per_task: dict[str, int] = {}
    for span in file_spans(busy_parent.spans_path):
        task = span_attributes(span).get("otel_claude.task")
        if task is not None:
            per_task[task] = per_task.get(task, 0) + 1
    assert {task: n for task, n in per_task.items() if task != "parent"} == {
        f"child-{n}": CHILD_CALLS for n in range(FORKS)}


def test_forked_workers_count_only_their_own_calls(busy_parent: Parent) -> None:
    """Issue 11.3: otel_claude.calls in a child is the child's calls, not the parent's totals at the fork."""
    for number in range(3):
        report = fork_child(busy_parent, number, child_counts)
        assert report.get("exit") == 0, report
        assert report["calls"] == CHILD_CALLS, f"child {number}: otel_claude.calls = {report['calls']}"


def test_forked_workers_keep_reloading_the_policy(busy_parent: Parent) -> None:
    """Issue 11.2: a child picks up a policy version the parent publishes after the fork."""
    for number in range(3):
        report = fork_child(busy_parent, number, child_policy,
                            lambda n=number: publish(busy_parent.policy_path, f"after-fork-{n}"))
        assert report.get("exit") == 0, report
        assert report["policy"] == f"after-fork-{number}", f"child {number} kept policy {report['policy']}"
    assert policy_after_waiting("after-fork-2") == "after-fork-2"  # and the parent follows too


def test_exporter_lock_held_at_the_fork_is_not_inherited(tmp_path: Path) -> None:
    """The deterministic case of the race above: the parent's export thread holds the exporter's lock when the
    fork happens. The child's export must not wait on a lock nobody in the child will ever release."""
    exporter = otel_claude.OTLPJsonFileSpanExporter(tmp_path / "spans.jsonl")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    held, release = threading.Event(), threading.Event()

    def exporting() -> None:
        with exporter._lock:  # what export() holds while it writes
            held.set()
            release.wait(CHILD_WAIT_S)

    holder = threading.Thread(target=exporting, daemon=True)
    holder.start()
    assert held.wait(CHILD_WAIT_S)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            provider.get_tracer("t").start_span("in the child").end()  # exports on this thread
            os.write(write_end, b"exported")
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], CHILD_WAIT_S)
        answer = os.read(read_end, 100) if ready else b""
    finally:
        os.close(read_end)
        release.set()
        if not ready:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        holder.join(CHILD_WAIT_S)
        provider.shutdown()
    assert answer == b"exported", "the child blocked on the exporter lock the parent's thread held at the fork"
    assert "in the child" in (tmp_path / "spans.jsonl").read_text()
