"""The workload driver: a scenario's traffic through the real, instrumented SDK, against any base URL, on time.

Each call is sent at its planned time on the scenario clock (see `claude_sim._clock`): per-task arrival processes,
sessions whose turns carry the whole conversation so far, the user's think time between turns. It is labelled with
`otel_claude.task(name)`, carries `x-sim-task` / `x-sim-case` / `x-sim-turn` headers (ignored by the real API), is
graded like a labelled eval set (the answer line or the answer tool's input against the case's expected label), and
the share of calls a user scores gets `otel_claude.feedback` at its scenario delay. Spans go to an OTLP JSON lines
file with their start times moved to scenario time, durations as measured.

    otel-claude workload --sim --calls 1500 --workers 8 --out spans.jsonl
    otel-claude workload --base-url http://127.0.0.1:8080 --scenario my.yaml --speed 3600 --real-time

A call of a later turn waits for the turn before it (it needs the reply); a failed turn ends its session. With more
than one worker, calls overlap: a call may reach the simulator a little after the clock has moved on to the next
planned call, so its scenario time is exact only with one worker (or on a real-time clock that keeps up).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anthropic
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

import otel_claude
from claude_sim._clock import ScenarioClock, run_start
from claude_sim._engine import SEQ_HEADER, TIME_HEADER
from claude_sim._jobs import Job, grade, plan_jobs, same_answer
from claude_sim._markers import mark_conversation
from claude_sim._prompts import echo, next_request
from claude_sim._scenario import Scenario
from claude_sim._scenario_file import ScenarioError, load_scenario
from claude_sim._span_time import ScenarioTimeSpanProcessor, scenario_moment
from claude_sim._stats import CallRecord, Summary
from otel_claude import semconv
from otel_claude.catalog import Usage, cost_usd, resolve
from otel_claude.cli_args import CommandParser, whole_number
from otel_claude.cli_checks import unwritable
from otel_claude.cli_progress import Progress
from otel_claude.policy import PolicyError, load_policy_text

__all__ = ["Job", "grade", "main", "plan_jobs", "run_workload"]

_CALL, _FEEDBACK = 0, 1


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
    return CallRecord(task=job.task, model=message.model, stream=job.stream, duration_s=duration, ttft_s=ttft,
                      input_tokens=usage.input_tokens + read + written, output_tokens=usage.output_tokens,
                      cache_read_tokens=read, cache_write_tokens=written, cost_usd=cost,
                      stop_reason=message.stop_reason, correct=grade(message, job.expected), turn=job.turn, at=job.at)


def _failed(job: Job, body: dict[str, Any], error: BaseException, duration: float) -> CallRecord:
    return CallRecord(task=job.task, model=body["model"], stream=job.stream, duration_s=duration,
                      error=type(error).__name__, turn=job.turn, at=job.at)


def _call_sync(client: Any, job: Job, body: dict[str, Any], headers: dict[str, str]) -> tuple[CallRecord, Any]:
    started = time.perf_counter()
    try:
        with otel_claude.task(job.task):
            if not job.stream:
                message = client.messages.create(**body, extra_headers=headers)
                return _record(job, message, time.perf_counter() - started, None), message
            ttft = None
            with client.messages.stream(**body, extra_headers=headers) as stream:
                for event in stream:
                    if ttft is None and event.type == "content_block_delta":
                        ttft = time.perf_counter() - started
                message = stream.get_final_message()
            return _record(job, message, time.perf_counter() - started, ttft), message
    except anthropic.AnthropicError as error:
        return _failed(job, body, error, time.perf_counter() - started), None


async def _call_async(client: Any, job: Job, body: dict[str, Any],
                      headers: dict[str, str]) -> tuple[CallRecord, Any]:
    started = time.perf_counter()
    try:
        with otel_claude.task(job.task):
            if not job.stream:
                message = await client.messages.create(**body, extra_headers=headers)
                return _record(job, message, time.perf_counter() - started, None), message
            ttft = None
            async with client.messages.stream(**body, extra_headers=headers) as stream:
                async for event in stream:
                    if ttft is None and event.type == "content_block_delta":
                        ttft = time.perf_counter() - started
                message = await stream.get_final_message()
            return _record(job, message, time.perf_counter() - started, ttft), message
    except anthropic.AnthropicError as error:
        return _failed(job, body, error, time.perf_counter() - started), None


class _Progress:
    """The run's calls as a progress bar (rate, ETA, errors so far) when stderr is a terminal; thread-safe."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._bar = Progress(total, "workload", unit="call", enabled=None if enabled else False)
        self._errors = 0
        self._lock = threading.Lock()

    def tick(self, record: CallRecord) -> None:
        with self._lock:
            self._errors += record.error is not None
            errors = self._errors
        self._bar.update(1, errors=errors)

    def close(self) -> None:
        self._bar.close()


class _Run:
    """One run's schedule and what the calls left behind: records, response ids, conversations in progress.

    The dispatcher below only waits and sends; this decides what is sent and what is scored.
    """

    def __init__(self, scenario: Scenario, jobs: list[Job], clock: ScenarioClock,
                 conversation_cache: Mapping[str, str], progress: _Progress) -> None:
        self.scenario = scenario
        self.jobs = jobs
        self.clock = clock
        self.conversation_cache = conversation_cache
        self.progress = progress
        self.records: dict[int, CallRecord] = {}
        self._response_ids: dict[int, str] = {}
        self._open: dict[tuple[str, int], tuple[dict[str, Any], list[dict[str, Any]]]] = {}  # (body, reply) so far

    def events(self) -> Iterator[tuple[int, float, Job]]:
        """(kind, scenario time, job) in time order: calls, and scores that come later than their call."""
        items = [(job.at, _CALL, job.number) for job in self.jobs]
        items += [(job.at + job.feedback.delay_s, _FEEDBACK, job.number) for job in self.jobs
                  if job.feedback is not None and job.feedback.delay_s > 0]
        for at, kind, number in sorted(items):
            yield kind, at, self.jobs[number]

    def body_for(self, job: Job) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(what the caller's code builds, what it sends); None when its session ended early."""
        session = (job.task, job.session)
        if job.turn == 1:
            body = job.body
        else:
            state = self._open.pop(session, None)
            if state is None:
                return None
            body = next_request(self.scenario, job.task, state[0], state[1], job.case, job.turn)
        assert body is not None
        ttl = self.conversation_cache.get(job.task)
        return body, mark_conversation(body, ttl) if ttl else body

    def finish(self, job: Job, body: dict[str, Any], record: CallRecord, message: Any) -> None:
        self.records[job.number] = record
        self.progress.tick(record)
        if message is None:
            return
        self._response_ids[job.number] = message.id
        if job.turn < job.turns:
            self._open[(job.task, job.session)] = (body, echo(message.content))
        if job.feedback is not None and job.feedback.delay_s <= 0:
            self.score(job)

    def score(self, job: Job) -> None:
        record = self.records.get(job.number)
        if record is None or record.correct is None or job.feedback is None:
            return  # the call failed (or was never sent): nothing to score
        value, label = job.feedback.score(record.correct)
        otel_claude.feedback(self._response_ids[job.number], value, label)

    def summary(self, wall_s: float, tally: _CostTally | None) -> Summary:
        records = [self.records[number] for number in sorted(self.records)]
        if tally is None:
            return Summary.of(records, wall_s)
        return Summary.of(records, wall_s, tally.charged, tally.evaluation)


def _headers(job: Job, clock: ScenarioClock, ticket: int) -> dict[str, str]:
    return {**job.headers, TIME_HEADER: repr(job.at), SEQ_HEADER: f"{clock.sequence.token}:{ticket}"}


Caller = Callable[[Job, dict[str, Any], dict[str, str]], Awaitable[tuple[CallRecord, Any]]]


async def _dispatch(run: _Run, workers: int, call: Caller) -> None:
    """Send the run's calls at their times with up to `workers` in flight; `call(job, body, headers)` makes one.

    A later turn needs the reply to the one before. With one worker the dispatcher waits for it (strict time
    order). With more, a turn whose previous reply has not come yet when its time does is sent as soon as it
    comes, while later calls go on: it is then served after them, at its own planned time (see `_clock`).
    """
    slots = asyncio.Semaphore(workers)
    tasks: dict[int, asyncio.Task[None]] = {}
    latest: dict[tuple[str, int], asyncio.Task[None]] = {}  # a session's latest turn, sent or waiting
    clock = run.clock

    async def send(job: Job, ticket: int) -> None:  # holding a slot
        try:
            bodies = run.body_for(job)
            if bodies is not None:
                with scenario_moment(job.at):
                    record, message = await call(job, bodies[1], _headers(job, clock, ticket))
                    run.finish(job, bodies[0], record, message)
        finally:
            clock.sequence.done(ticket)
            slots.release()

    async def late(job: Job, before: asyncio.Task[None]) -> None:
        await before
        await slots.acquire()
        await send(job, clock.sequence.ticket())

    for kind, at, job in run.events():
        if kind == _FEEDBACK:
            if job.number in tasks:
                await tasks[job.number]
                await asyncio.sleep(clock.advance_to(at))
                with scenario_moment(at):
                    run.score(job)
            continue
        session = (job.task, job.session)
        before = latest.get(session) if job.turn > 1 else None
        await slots.acquire()
        if before is not None and not before.done():
            slots.release()
            tasks[job.number] = latest[session] = asyncio.create_task(late(job, before))
            continue
        await asyncio.sleep(clock.advance_to(at))
        tasks[job.number] = latest[session] = asyncio.create_task(send(job, clock.sequence.ticket()))
    await asyncio.gather(*tasks.values())


async def _run_async(client: Any, run: _Run, workers: int) -> None:
    try:
        await _dispatch(run, workers, lambda job, body, headers: _call_async(client, job, body, headers))
        # Paired evaluations run in the background of the calls they shadow: the run waits for them (this loop's,
        # before the client closes), so their spans and spend are in it.
        await otel_claude.wait_for_evaluations_async()
    finally:
        await client.close()


def _run_sync(client: Any, run: _Run, workers: int) -> None:
    """The sync SDK in worker threads, dispatched by the same scheduler."""
    def in_thread(job: Job, body: dict[str, Any], headers: dict[str, str]) -> tuple[CallRecord, Any]:
        with scenario_moment(job.at):  # spans end in this thread
            return _call_sync(client, job, body, headers)

    async def inline(job: Job, body: dict[str, Any], headers: dict[str, str]) -> tuple[CallRecord, Any]:
        return in_thread(job, body, headers)

    async def main(pool: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        if workers == 1:  # nothing can overlap the call: make it right here, without two thread hops per call
            await _dispatch(run, workers, inline)
        else:
            await _dispatch(run, workers, lambda job, body, headers: loop.run_in_executor(
                pool, in_thread, job, body, headers))

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="workload") as pool:
        asyncio.run(main(pool))
    otel_claude.wait_for_evaluations()  # the background evaluations of these calls, before the run ends


class _CostTally(SpanProcessor):
    """A span processor summing the cost of call spans per task: what the API charged for the task's own calls,
    safety-net first attempts included (their replies never reach the caller, so the caller's records cannot count
    them), and apart from it what the instrumentor's own evaluation calls (shadow, judge) cost."""

    def __init__(self) -> None:
        self.charged: dict[str, float] = {}
        self.evaluation: dict[str, float] = {}
        self._lock = threading.Lock()

    def on_end(self, span: ReadableSpan) -> None:
        attributes = span.attributes or {}
        task, cost = attributes.get(semconv.TASK), attributes.get(semconv.COST_USD)
        if isinstance(task, str) and isinstance(cost, int | float):
            tally = self.evaluation if attributes.get(semconv.EVALUATION_ROLE) else self.charged
            with self._lock:
                tally[task] = tally.get(task, 0.0) + float(cost)


@contextmanager
def _instrumented(out: str | None, policy: Any, service_name: str, clock: ScenarioClock,
                  tally: _CostTally) -> Iterator[None]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    def exporting(exporter: SpanExporter) -> ScenarioTimeSpanProcessor:
        return ScenarioTimeSpanProcessor(BatchSpanProcessor(exporter), clock)

    resource = Resource.create({"service.name": service_name})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(tally)
    if out:
        tracer_provider.add_span_processor(exporting(otel_claude.OTLPJsonFileSpanExporter(out)))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        # Also to a Collector or Jaeger when one is configured the standard way, so the runs can be viewed there.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        tracer_provider.add_span_processor(exporting(OTLPSpanExporter()))
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


def _clock_for(base_url: str | None, clock: ScenarioClock | None) -> ScenarioClock:
    if clock is not None:
        return clock
    from claude_sim._server import running_clock

    shared = running_clock(base_url)
    return shared if isinstance(shared, ScenarioClock) else ScenarioClock()


def run_workload(base_url: str | None, scenario: Scenario | str | None = None, calls: int = 1500, workers: int = 8,
                 *, out: str | None = None, use_async: bool = False, stream_share: float = 0.3, seed: int = 0,
                 policy: Any = None, api_key: str | None = None, client_factory: Any = None,
                 instrument: bool = True, progress: bool = False, max_retries: int = 2,
                 service_name: str = "claude-sim-workload", clock: ScenarioClock | None = None,
                 conversation_cache: str | Mapping[str, str] | None = None, graders: bool = True) -> Summary:
    """Run the first `calls` calls of the scenario's traffic with up to `workers` in flight, and summarise them.

    With `instrument` (default) this installs otel_claude with its own providers (spans to `out` as OTLP JSON
    lines, `policy` enforced) for the duration of the run and removes it afterwards; pass False when the caller
    has instrumented already. `client_factory(is_async)` replaces the default client construction. `clock` is the
    scenario clock: by default the one of the in-process simulator at `base_url`, else a fast-forward clock of the
    run's own. `conversation_cache` ("5m" | "1h" for every multi-turn task, or a TTL per task) makes callers put a
    cache breakpoint on the last message block of every request (what a service caching its conversations sends).
    `graders`: register, for every task, a user grader for paired evaluation that compares the answers two models
    give (`_jobs.same_answer`), as a service whose answers are checkable does; without it, prose answers are
    settled only by a judge.
    """
    spec = load_scenario(scenario)
    clock = _clock_for(base_url, clock)
    jobs = plan_jobs(spec, calls, seed, stream_share, start=run_start(clock))
    key = api_key or os.environ.get("ANTHROPIC_API_KEY") or "sim"

    def make_client(is_async: bool) -> Any:
        if client_factory is not None:
            return client_factory(is_async)
        kind = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
        return kind(base_url=base_url, api_key=key, max_retries=max_retries)

    if isinstance(conversation_cache, str):
        conversation_cache = {name: conversation_cache for name, task in spec.tasks.items() if task.session}
    run = _Run(spec, jobs, clock, conversation_cache or {}, _Progress(len(jobs), progress))
    started = time.perf_counter()
    tally = _CostTally()
    context = _instrumented(out, policy, service_name, clock, tally) if instrument else _nothing()
    tasks = list(spec.tasks) if graders else []
    for task in tasks:
        otel_claude.register_grader(task, same_answer)
    try:
        with context:
            client = make_client(use_async)
            if use_async:
                asyncio.run(_run_async(client, run, workers))
            else:
                _run_sync(client, run, workers)
    finally:
        run.progress.close()
        for task in tasks:
            otel_claude.unregister_grader(task)
    return run.summary(time.perf_counter() - started, tally if instrument else None)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


USAGE = "%(prog)s (--sim | --base-url URL) [options]"
DESCRIPTION = __doc__.split("\n\n")[0]


def _number(*, high: float = math.inf, positive: bool = False) -> Callable[[str], float]:
    """A float in [0, high], or above 0 when `positive`."""
    expected = "positive" if positive else f"in [0, {high:g}]" if high < math.inf else "0 or more"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not (value > 0 if positive else value >= 0) or not value <= high:
            raise argparse.ArgumentTypeError(f"must be {expected}, got {value:g}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `otel-claude workload` (importing this module does not load the simulator's server)."""
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--base-url", help="API base URL (a running simulator, or https://api.anthropic.com)")
    target.add_argument("--sim", action="store_true", help="start an in-process simulator for the run")
    parser.add_argument("--scenario", default="default", help="scenario YAML path or a shipped name")
    parser.add_argument("--calls", type=whole_number(1), default=1500, help="calls to make")
    parser.add_argument("--workers", type=whole_number(1), default=8, help="calls in flight at most")
    parser.add_argument("--out", metavar="FILE", help="OTLP JSON lines file for the spans (default: none written)")
    parser.add_argument("--async", dest="use_async", action="store_true", help="use AsyncAnthropic")
    parser.add_argument("--stream-share", type=_number(high=1.0), default=0.3,
                        help="share of calls that stream")
    parser.add_argument("--seed", type=int, default=0, help="seed of the planned traffic")
    parser.add_argument("--policy", metavar="FILE", help="policy file enforced by otel_claude during the run")
    parser.add_argument("--latency-scale", type=_number(), default=0.02,
                        help="with --sim: latency model time scale (1 = published speeds)")
    parser.add_argument("--speed", type=_number(positive=True), default=1.0,
                        help="scenario seconds per wall second (give a separate simulator the same --speed)")
    parser.add_argument("--real-time", action="store_true",
                        help="wait for each call's time instead of skipping idle time (a live run)")
    parser.add_argument("--conversation-cache", choices=("5m", "1h"),
                        help="callers of multi-turn tasks mark the end of each conversation for caching")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (there is none when stderr is not "
                        "a terminal either)")


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="otel-claude workload", usage=USAGE, description=DESCRIPTION)
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    problem = _unusable_inputs(args)
    if problem is not None:
        print(f"otel-claude workload: {problem}", file=sys.stderr)
        return 2
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as err:
        print(f"otel-claude workload: --scenario: {err}", file=sys.stderr)
        return 2
    clock = ScenarioClock(args.speed, fast_forward=not args.real_time)
    options = dict(calls=args.calls, workers=args.workers, out=args.out, use_async=args.use_async,
                   stream_share=args.stream_share, seed=args.seed, policy=args.policy, progress=not args.quiet,
                   clock=clock, conversation_cache=args.conversation_cache)
    if args.sim:
        from claude_sim._server import SimServer

        with SimServer(scenario=scenario, seed=args.seed, latency_scale=args.latency_scale, record=False,
                       clock=clock) as sim:
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
