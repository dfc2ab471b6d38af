"""Bounded parallelism within a rate limit: the same bursty calls without a limiter, with the limiter the tuner
recommends from the first run's spans, with an adaptive limiter given no numbers, and under fixed concurrency caps
(the sweep that finds the best fixed cap), all in one run against the simulator's enforced rate limit at real time.

    python bench/bench_ratelimit.py [--bursts 6] [--sweep 4,5,6,8,10] [--no-waste] [--overhead-only]

The scenario (claude_sim/scenarios/bursty-ratelimited.yaml, plus what its loader cannot hold yet, here): an account
limit of 300 requests/minute enforced with 429 + retry-after, the bucket holding 2 s of the limit; bursts of 48 calls
every 8 s (120% of the limit), each burst fired at once by an asyncio application; the SDK's default retries (2,
honouring retry-after), and a job that still fails is re-submitted until it succeeds. Each configuration gets a
fresh simulator (full buckets). Per configuration: 429s the simulator served, SDK retries (from the spans), jobs
re-submitted, end-to-end job latency from arrival to success (p50, p95), and throughput in completed calls per
minute from the first arrival to the last completion, against the account limit.

Second part (oversized max_tokens): callers reserve 4,096 output tokens for about 120 used, against an output limit
the reservations exhaust before the request limit: no limiter, the tuner's limits alone, and the tuner's whole
policy (its max_tokens caps as well).

Last, the limiter's own cost under no load, on a real call: admission + release far from the limits, with and
without the response's rate-limit headers to sync, and the match of a call no limit covers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import anthropic
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_claude
from claude_sim import RateLimits, SimServer, load_scenario
from claude_sim.workload import Job, plan_jobs
from otel_claude import semconv
from otel_claude.policy import Limit, Policy, dump_policy, limit_id, load_policy_text
from tuner import cli as tune_cli
from tuner._limits import LimitDecision, decide_limits, policy_limits
from tuner._limits_input import read_limit_rows

SCENARIO = Path(__file__).resolve().parent.parent / "claude_sim" / "scenarios" / "bursty-ratelimited.yaml"
MODEL = "claude-sonnet-4-6"
LATENCY_SCALE = 0.25  # calls take about 1 s
MAX_ATTEMPTS = 200  # per job: a guard against a run that never ends, never reached in practice


@dataclass(frozen=True)
class Workload:
    """An account limit and bursts of jobs fired against it (what the scenario file cannot hold yet)."""

    account: RateLimits
    burst_size: int
    period_s: float
    max_tokens: int | None = None  # overrides the scenario's baseline max_tokens

    @property
    def limit_per_minute(self) -> int:
        return self.account.requests_per_minute


# The main scenario: 300 requests/minute, a 2 s bucket, bursts of 48 every 8 s (120% of the limit).
BURSTY = Workload(RateLimits(requests_per_minute=300, input_tokens_per_minute=20_000_000,
                             output_tokens_per_minute=20_000_000, enforce=True, burst_seconds=2.0), 48, 8.0)
# Oversized max_tokens: 4,096 reserved per call for ~120 used, against 60,000 output tokens/minute (a full-minute
# bucket); the request limit (1,000/minute) would allow more than the output reservations do.
WASTE = Workload(RateLimits(requests_per_minute=1000, input_tokens_per_minute=20_000_000,
                            output_tokens_per_minute=60_000, enforce=True, burst_seconds=60.0), 120, 6.0,
                 max_tokens=4096)


@dataclass
class Result:
    name: str
    jobs: int
    completed: int
    served_429: int
    sdk_retries: int
    resubmitted: int
    p50: float
    p95: float
    per_minute: float
    admission_wait_p95: float


async def _job(client: anthropic.AsyncAnthropic, job: Job, out: list) -> None:
    arrived = time.monotonic()
    with otel_claude.task(job.task):
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                await client.messages.create(**job.body, extra_headers=job.headers)
            except (anthropic.RateLimitError, anthropic.InternalServerError, anthropic.APIConnectionError):
                continue  # the application re-submits a job the SDK gave up on
            out.append((arrived, time.monotonic(), attempt))
            return


async def _drive(base_url: str, workload: Workload, bursts: int) -> list[tuple[float, float, int]]:
    jobs = plan_jobs(load_scenario(SCENARIO), bursts * workload.burst_size, seed=7, stream_share=0.0)
    if workload.max_tokens is not None:
        jobs = [replace(job, body={**job.body, "max_tokens": workload.max_tokens}) for job in jobs]
    client = anthropic.AsyncAnthropic(base_url=base_url, api_key="bench", timeout=120.0)
    done: list[tuple[float, float, int]] = []
    tasks = []
    start = time.monotonic()
    size = workload.burst_size
    for burst in range(bursts):
        await asyncio.sleep(max(0.0, start + burst * workload.period_s - time.monotonic()))
        tasks += [asyncio.create_task(_job(client, job, done)) for job in jobs[burst * size:(burst + 1) * size]]
    await asyncio.gather(*tasks)
    await client.close()
    return done


def run(name: str, policy: Policy | None, workload: Workload, bursts: int, spans_file: Path | None = None) -> Result:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    if spans_file is not None:
        tracer_provider.add_span_processor(SimpleSpanProcessor(otel_claude.OTLPJsonFileSpanExporter(str(spans_file))))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    with SimServer(scenario=str(SCENARIO), seed=7, latency_scale=LATENCY_SCALE, rate_limits=workload.account,
                   record=False) as sim:
        otel_claude.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, policy=policy)
        try:
            done = asyncio.run(_drive(sim.base_url, workload, bursts))
        finally:
            otel_claude.uninstrument()
        served_429 = sim.errors_served.get(429, 0)
    tracer_provider.shutdown()
    spans = [s for s in exporter.get_finished_spans() if s.attributes.get(semconv.GEN_AI_OPERATION_NAME) == "chat"]
    retries = sum(int(s.attributes.get(semconv.RETRIES) or 0) for s in spans)
    waits = sorted(float(s.attributes.get(semconv.ADMISSION_WAIT) or 0.0) for s in spans)
    latencies = sorted(end - arrived for arrived, end, _ in done)
    first, last = min(a for a, _, _ in done), max(e for _, e, _ in done)
    return Result(
        name, bursts * workload.burst_size, len(done), served_429, retries, sum(n - 1 for _, _, n in done),
        statistics.median(latencies), latencies[int(0.95 * (len(latencies) - 1))],
        len(done) / (last - first) * 60.0, waits[int(0.95 * (len(waits) - 1))] if waits else 0.0,
    )


def tuned_policy(spans_file: Path) -> tuple[Policy, list[LimitDecision]]:
    """The limits the tuner recommends from a run's spans (its per-task rules left out)."""
    decisions = decide_limits(read_limit_rows([str(spans_file)]))
    policy = Policy(version="bench-tuned", limits=policy_limits(decisions))
    dump_policy(policy)  # validates
    return policy, decisions


def full_tune(spans_file: Path, directory: Path) -> Policy:
    """What `otel-claude tune` writes from a run's spans: per-task rules (max_tokens caps) and the limits."""
    out = directory / "policy.yaml"
    with contextlib.redirect_stdout(io.StringIO()):
        assert tune_cli.main([str(spans_file), "-o", str(out), "--no-progress"]) == 0
    return load_policy_text(out.read_text(), str(out))


def fixed_cap(cap: int) -> Policy:
    models = (MODEL,)
    return Policy(version=f"cap-{cap}", limits=(
        Limit(models=models, id=limit_id("*", models), concurrency=cap, adaptive=False, max_wait=300.0),))


def adaptive_only() -> Policy:
    """No numbers at all: the limiter learns the limits from the response headers and adapts."""
    models = (MODEL,)
    return Policy(version="adaptive", limits=(Limit(models=models, id=limit_id("*", models), max_wait=300.0),))


def _best_us(fn: Callable[[], None], calls: int, batches: int = 40) -> float:
    """CPU microseconds per call of `fn`, the best of `batches` (other load only ever adds time)."""
    best = float("inf")
    for _ in range(batches):
        begin = time.process_time()
        for _ in range(calls):
            fn()
        best = min(best, (time.process_time() - begin) / calls * 1e6)
    return best


def overhead(calls: int) -> dict[str, float]:
    """What the limiter adds per call when far from its limits, part by part, on a real call and a real span."""
    from otel_claude._admission import Admission, release
    from otel_claude._call import Call
    from otel_claude._config import resolve_config
    from otel_claude._request import summarize_request
    from otel_claude._response import UsageReading
    from otel_claude._telemetry import Telemetry

    far = Limit(models=(MODEL,), id=limit_id("*", (MODEL,)), concurrency=10_000, requests_per_minute=10**8,
                input_tokens_per_minute=10**10, output_tokens_per_minute=10**10)
    admission = Admission()
    admission.update(Policy(version="far", limits=(far,)))
    other = Admission()
    other.update(Policy(version="other", limits=(Limit(models=("claude-haiku-4-5",), id="*/claude-haiku-4-5"),)))
    tracer_provider = TracerProvider()
    telemetry = Telemetry(tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()]))
    body = {"model": MODEL, "max_tokens": 1024, "messages": [{"role": "user", "content": "x" * 2000}]}
    call = Call(telemetry, resolve_config(), "chat", summarize_request(body), provider="anthropic",
                server=("bench.local", 443), task="triage", streaming=False)
    call.usage = UsageReading()
    call.usage.merge({"input_tokens": 480, "output_tokens": 120})  # the charge is corrected to these
    # What a real response carries: limit and remaining for requests, input and output tokens.
    attrs = {limit: 10**10 for limit, _ in semconv.RATELIMIT_READINGS}
    attrs.update({remaining: 10**10 - 2000 for _, remaining in semconv.RATELIMIT_READINGS})

    def admit_and_release() -> None:
        admission.admit_sync(call, None)
        release(call, attrs, 0.5)

    def admit_and_release_bare() -> None:
        admission.admit_sync(call, None)
        release(call, None, 0.5)

    return {
        "admission + release, response headers synced": _best_us(admit_and_release, calls),
        "admission + release, no rate-limit headers": _best_us(admit_and_release_bare, calls),
        "matching a call no limit covers": _best_us(lambda: other.match("triage", MODEL), calls),
    }


def _table(title: str, workload: Workload, results: list[Result]) -> None:
    limit = workload.limit_per_minute
    print(f"\n{title}")
    print(f"{'configuration':<22}{'done':>6}{'429s':>7}{'retries':>9}{'resubmit':>10}{'p50 s':>8}{'p95 s':>8}"
          f"{'calls/min':>11}{'of limit':>10}{'wait p95':>10}")
    for r in results:
        print(f"{r.name:<22}{r.completed:>6}{r.served_429:>7}{r.sdk_retries:>9}{r.resubmitted:>10}{r.p50:>8.2f}"
              f"{r.p95:>8.2f}{r.per_minute:>11.1f}{r.per_minute / limit:>10.1%}{r.admission_wait_p95:>10.2f}")


def _cut(before: int, after: int) -> str:
    return f"{1 - after / before:.1%}" if before else "n/a (none before)"


def bursty(bursts: int, sweep: list[int]) -> None:
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        spans_file = Path(tmp) / "baseline.jsonl"
        results.append(run("no limiter", None, BURSTY, bursts, spans_file))
        policy, decisions = tuned_policy(spans_file)
    for d in decisions:
        print(f"tuner on {d.model}: {d.reason}")
    results.append(run("tuned limiter", policy, BURSTY, bursts))
    results.append(run("adaptive, no numbers", adaptive_only(), BURSTY, bursts))
    results += [run(f"fixed cap {cap}", fixed_cap(cap), BURSTY, bursts) for cap in sweep]
    account = BURSTY.account
    _table(f"bursts of {BURSTY.burst_size} every {BURSTY.period_s:g} s x {bursts}; account limit "
           f"{account.requests_per_minute}/min ({account.burst_seconds:g} s bucket); anthropic {anthropic.__version__}",
           BURSTY, results)
    base, tuned = results[0], results[1]
    best = max(results[3:], key=lambda r: (r.per_minute, -r.p95), default=None)
    print("targets (tuned vs no limiter, same calls, this run):")
    print(f"  429s cut {_cut(base.served_429, tuned.served_429)}; SDK retries + re-submissions cut "
          f"{_cut(base.sdk_retries + base.resubmitted, tuned.sdk_retries + tuned.resubmitted)} (target >= 90%)")
    print(f"  p95 latency {tuned.p95:.2f} s vs {base.p95:.2f} s: ratio {tuned.p95 / base.p95:.2f} (target <= 1.00)")
    print(f"  throughput {tuned.per_minute:.1f}/min = {tuned.per_minute / BURSTY.limit_per_minute:.1%} of the "
          "account limit (target >= 95%)")
    if best is not None:
        print(f"  best fixed cap of the sweep: {best.name} ({best.per_minute:.1f}/min, p95 {best.p95:.2f} s, "
              f"{best.served_429} 429s); tuned / best fixed throughput: {tuned.per_minute / best.per_minute:.2f}")


def waste(bursts: int) -> None:
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        spans_file = Path(tmp) / "baseline.jsonl"
        results.append(run("no limiter", None, WASTE, bursts, spans_file))
        limits, decisions = tuned_policy(spans_file)
        full = full_tune(spans_file, Path(tmp))
    for d in decisions:
        print(f"tuner on {d.model}: {d.reason}")
    caps = {rule.task: rule.max_tokens for rule in full.rules}
    results.append(run("tuned limits", limits, WASTE, bursts))
    results.append(run("+ tuned max_tokens", full, WASTE, bursts))
    account = WASTE.account
    _table(f"oversized max_tokens ({WASTE.max_tokens} for ~120 used): bursts of {WASTE.burst_size} every "
           f"{WASTE.period_s:g} s x {bursts}; {account.requests_per_minute} requests and "
           f"{account.output_tokens_per_minute:,} output tokens per minute; tuned caps {caps}", WASTE, results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bursts", type=int, default=6)
    parser.add_argument("--sweep", default="4,5,6,8,10", help="fixed concurrency caps to measure ('' for none)")
    parser.add_argument("--no-waste", dest="waste", action="store_false", help="skip the oversized max_tokens part")
    parser.add_argument("--overhead-only", action="store_true", help="only the limiter's cost under no load")
    parser.add_argument("--overhead-calls", type=int, default=5_000, help="calls per timed batch (40 batches)")
    args = parser.parse_args(argv)
    if not args.overhead_only:
        bursty(args.bursts, [int(c) for c in args.sweep.split(",") if c.strip()])
        if args.waste:
            waste(args.bursts)
    print("\nthe limiter under no load, CPU per call (target: <= 5 us added per call; a call admitted at once sets "
          "no span attribute):")
    for name, value in overhead(args.overhead_calls).items():
        print(f"  {name}: {value:.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
