"""The workload driver: a scenario's traffic through the real, instrumented SDK, against any base URL.

Each call is labelled with `otel_claude.task(name)`, carries `x-sim-task` / `x-sim-case` headers (ignored by the
real API), is graded like a labelled eval set (the answer line or the answer tool's input against the case's
expected label) and scored with `otel_claude.feedback`. Spans go to an OTLP JSON lines file.

    otel-claude workload --sim --calls 1500 --workers 8 --out spans.jsonl
    otel-claude workload --base-url http://127.0.0.1:8080 --scenario my.yaml --async --stream-share 0.3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic

import otel_claude
from claude_sim._engine import CASE_HEADER, TASK_HEADER
from claude_sim._prompts import build_request
from claude_sim._rng import unit
from claude_sim._scenario import ANSWER_PREFIX, Scenario, ScenarioError, load_scenario
from claude_sim._stats import CallRecord, Summary
from otel_claude.catalog import Usage, cost_usd, resolve
from otel_claude.cli_checks import unwritable
from otel_claude.policy import PolicyError, load_policy_text

__all__ = ["Job", "grade", "main", "plan_jobs", "run_workload"]

_CASE_SPACE = 1_000_000_000
ClientFactory = Callable[[bool], Any]  # is_async -> anthropic.Anthropic | anthropic.AsyncAnthropic


@dataclass(frozen=True)
class Job:
    number: int
    task: str
    case: int
    expected: str
    stream: bool
    body: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {TASK_HEADER: self.task, CASE_HEADER: str(self.case)}


def plan_jobs(scenario: Scenario, calls: int, seed: int, stream_share: float) -> list[Job]:
    """The run's calls, fixed by the seed: task by traffic share, a random case of it, streaming or not."""
    jobs = []
    for number in range(calls):
        task = scenario.task_for_call(seed, number)
        case = scenario.case(task.name, int(unit(seed, "case", number) * _CASE_SPACE))
        body = build_request(scenario, case, scenario.baseline.model, scenario.baseline.max_tokens)
        jobs.append(Job(number, task.name, case.index, case.expected, unit(seed, "stream", number) < stream_share,
                        body))
    return jobs


def grade(message: Any, expected: str) -> bool:
    """Correct when the reply's answer (an `ANSWER: x` line, or an `answer` tool argument) is the expected label."""
    for block in message.content:
        if block.type == "tool_use" and isinstance(block.input, dict) and "answer" in block.input:
            return block.input["answer"] == expected
        if block.type == "text":
            for line in block.text.splitlines():
                if line.startswith(ANSWER_PREFIX):
                    return line[len(ANSWER_PREFIX):].strip() == expected
    return False


def _record(job: Job, message: Any, duration: float, ttft: float | None) -> CallRecord:
    usage = message.usage
    split = getattr(usage, "cache_creation", None)
    # SDKs released before the 5m/1h split keep the field as a plain dict.
    write_1h = (split.get("ephemeral_1h_input_tokens") if isinstance(split, dict)
                else getattr(split, "ephemeral_1h_input_tokens", 0)) or 0
    written = usage.cache_creation_input_tokens or 0
    read = usage.cache_read_input_tokens or 0
    info = resolve(message.model)
    cost = cost_usd(info, Usage(usage.input_tokens, usage.output_tokens, read, written - write_1h, write_1h)) \
        if info else 0.0
    correct = grade(message, job.expected)
    otel_claude.feedback(message, 1.0 if correct else 0.0, "correct" if correct else "wrong")
    return CallRecord(task=job.task, model=message.model, stream=job.stream, duration_s=duration, ttft_s=ttft,
                      input_tokens=usage.input_tokens + read + written, output_tokens=usage.output_tokens,
                      cache_read_tokens=read, cache_write_tokens=written, cost_usd=cost,
                      stop_reason=message.stop_reason, correct=correct)


def _failed(job: Job, error: BaseException, duration: float) -> CallRecord:
    return CallRecord(task=job.task, model=job.body["model"], stream=job.stream, duration_s=duration,
                      error=type(error).__name__)


def _call_sync(client: Any, job: Job) -> CallRecord:
    started = time.perf_counter()
    try:
        with otel_claude.task(job.task):
            if not job.stream:
                message = client.messages.create(**job.body, extra_headers=job.headers)
                return _record(job, message, time.perf_counter() - started, None)
            ttft = None
            with client.messages.stream(**job.body, extra_headers=job.headers) as stream:
                for event in stream:
                    if ttft is None and event.type == "content_block_delta":
                        ttft = time.perf_counter() - started
                message = stream.get_final_message()
            return _record(job, message, time.perf_counter() - started, ttft)
    except anthropic.AnthropicError as error:
        return _failed(job, error, time.perf_counter() - started)


async def _call_async(client: Any, job: Job) -> CallRecord:
    started = time.perf_counter()
    try:
        with otel_claude.task(job.task):
            if not job.stream:
                message = await client.messages.create(**job.body, extra_headers=job.headers)
                return _record(job, message, time.perf_counter() - started, None)
            ttft = None
            async with client.messages.stream(**job.body, extra_headers=job.headers) as stream:
                async for event in stream:
                    if ttft is None and event.type == "content_block_delta":
                        ttft = time.perf_counter() - started
                message = await stream.get_final_message()
            return _record(job, message, time.perf_counter() - started, ttft)
    except anthropic.AnthropicError as error:
        return _failed(job, error, time.perf_counter() - started)


class _Progress:
    """A line on stderr every ~5% of the run; thread-safe."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._total = total
        self._enabled = enabled and total > 0
        self._done = 0
        self._errors = 0
        self._step = max(1, total // 20)
        self._lock = threading.Lock()

    def tick(self, record: CallRecord) -> None:
        with self._lock:
            self._done += 1
            self._errors += record.error is not None
            if self._enabled and (self._done % self._step == 0 or self._done == self._total):
                print(f"workload: {self._done}/{self._total} calls, {self._errors} errors", file=sys.stderr,
                      flush=True)


def _run_sync(client: Any, jobs: list[Job], workers: int, progress: _Progress) -> list[CallRecord]:
    def one(job: Job) -> CallRecord:
        record = _call_sync(client, job)
        progress.tick(record)
        return record

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="workload") as pool:
        return list(pool.map(one, jobs))


async def _run_async(client: Any, jobs: list[Job], workers: int, progress: _Progress) -> list[CallRecord]:
    results: list[CallRecord | None] = [None] * len(jobs)
    queue = iter(enumerate(jobs))

    async def worker() -> None:
        for index, job in queue:  # a shared iterator: each job is taken by exactly one worker
            results[index] = await _call_async(client, job)
            progress.tick(results[index])  # type: ignore[arg-type]

    await asyncio.gather(*(worker() for _ in range(workers)))
    await client.close()
    return [record for record in results if record is not None]


@contextmanager
def _instrumented(out: str | None, policy: Any, service_name: str) -> Iterator[None]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": service_name})
    tracer_provider = TracerProvider(resource=resource)
    if out:
        tracer_provider.add_span_processor(BatchSpanProcessor(otel_claude.OTLPJsonFileSpanExporter(out)))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        # Also to a Collector or Jaeger when one is configured the standard way, so the runs can be viewed there.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    meter_provider = MeterProvider(resource=resource)
    otel_claude.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, policy=policy,
                           setup_providers=False)
    try:
        yield
    finally:
        otel_claude.uninstrument()
        tracer_provider.force_flush()
        tracer_provider.shutdown()
        meter_provider.shutdown()


def run_workload(base_url: str | None, scenario: Scenario | str | None = None, calls: int = 1500, workers: int = 8,
                 *, out: str | None = None, use_async: bool = False, stream_share: float = 0.3, seed: int = 0,
                 policy: Any = None, api_key: str | None = None, client_factory: ClientFactory | None = None,
                 instrument: bool = True, progress: bool = False, max_retries: int = 2,
                 service_name: str = "claude-sim-workload") -> Summary:
    """Run `calls` scenario calls with `workers` concurrent workers and summarise them.

    With `instrument` (default) this installs otel_claude with its own providers (spans to `out` as OTLP JSON
    lines, `policy` enforced) for the duration of the run and removes it afterwards; pass False when the caller
    has instrumented already. `client_factory(is_async)` replaces the default client construction.
    """
    spec = load_scenario(scenario)
    jobs = plan_jobs(spec, calls, seed, stream_share)
    key = api_key or os.environ.get("ANTHROPIC_API_KEY") or "sim"

    def make_client(is_async: bool) -> Any:
        if client_factory is not None:
            return client_factory(is_async)
        kind = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
        return kind(base_url=base_url, api_key=key, max_retries=max_retries)

    ticker = _Progress(len(jobs), progress)
    started = time.perf_counter()
    context = _instrumented(out, policy, service_name) if instrument else _nothing()
    with context:
        client = make_client(use_async)
        if use_async:
            records = asyncio.run(_run_async(client, jobs, workers, ticker))
        else:
            records = _run_sync(client, jobs, workers, ticker)
    return Summary.of(records, time.perf_counter() - started)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otel-claude workload", description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--base-url", help="API base URL (the simulator, or https://api.anthropic.com)")
    target.add_argument("--sim", action="store_true", help="start an in-process simulator for the run")
    parser.add_argument("--scenario", default="default", help="scenario YAML path or 'default'")
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--out", help="OTLP JSON lines file for the spans")
    parser.add_argument("--async", dest="use_async", action="store_true", help="use AsyncAnthropic")
    parser.add_argument("--stream-share", type=float, default=0.3, help="share of calls that stream (0..1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policy", help="policy file enforced by otel_claude during the run")
    parser.add_argument("--latency-scale", type=float, default=0.02, help="with --sim: latency model time scale")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not 0.0 <= args.stream_share <= 1.0:
        print(f"--stream-share must be in [0, 1], got {args.stream_share}", file=sys.stderr)
        return 2
    if args.calls < 1 or args.workers < 1:
        print("--calls and --workers must be positive", file=sys.stderr)
        return 2
    problem = _unusable_inputs(args)
    if problem is not None:
        print(f"otel-claude workload: {problem}", file=sys.stderr)
        return 2
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as err:
        print(f"otel-claude workload: --scenario: {err}", file=sys.stderr)
        return 2
    options = dict(calls=args.calls, workers=args.workers, out=args.out, use_async=args.use_async,
                   stream_share=args.stream_share, seed=args.seed, policy=args.policy, progress=not args.quiet)
    if args.sim:
        from claude_sim._server import SimServer

        with SimServer(scenario=scenario, seed=args.seed, latency_scale=args.latency_scale, record=False) as sim:
            summary = run_workload(sim.base_url, scenario, **options)
    else:
        summary = run_workload(args.base_url, scenario, **options)
    print(json.dumps(summary.to_dict(), indent=2) if args.json else summary.format())
    if summary.overall.calls and summary.overall.errors == summary.overall.calls:
        first = next((r.error for r in summary.records if r.error), "unknown")
        print(f"otel-claude workload: all {summary.overall.calls} calls failed (first: {first})", file=sys.stderr)
        return 1
    return 0


def _unusable_inputs(args: argparse.Namespace) -> str | None:
    """What makes the run impossible before it starts (a bad policy, an output it cannot write)."""
    if args.policy:
        # The library logs a bad policy and runs without it; a run asked to enforce one must not.
        try:
            load_policy_text(Path(args.policy).read_text(encoding="utf-8"), args.policy)
        except (OSError, UnicodeDecodeError) as err:
            return f"--policy: {args.policy}: cannot read ({getattr(err, 'strerror', None) or err})"
        except PolicyError as err:
            return f"--policy: {err}"
    if args.out:
        problem = unwritable(args.out, creates_directories=True)
        if problem is not None:
            return f"--out: cannot write {problem}"
    return None
