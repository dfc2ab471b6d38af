"""The caller's latency with paired evaluation on against off, through the real SDK and the simulator with latency.

    python bench/bench_evaluation.py [--calls 40] [--rounds 3] [--latency-scale 0.1]

The simulator's delays are a deterministic function of the request, so the same case costs the same server time in
both modes: the difference per case is what evaluation adds on the caller's side. Modes alternate round by round
(off, on, off, on...) so drifting machine load hits both, and each case keeps its fastest round (load only adds
time). "on" shadows half the calls (share 0.5, ten times what a tuner asks for, to load the background) to Haiku:
"sampled" are the calls whose pair was started, "other" the calls in between, during which the previous pair's
shadow call runs. The simulator runs in its own process (as the API would); the worker thread or event-loop task
that makes the shadow call and grades it shares this process, and on this 2-core machine the simulator's CPU too.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import anthropic
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_claude

SONNET, HAIKU = "claude-sonnet-4-6", "claude-haiku-4-5"
RULE = {"task": "classify", "max_tokens": 2000}


def _policy(evaluate: bool) -> dict[str, Any]:
    rule = {**RULE, **({"evaluate": {"model": HAIKU, "share": 0.5, "budget": 1.0}} if evaluate else {})}
    return {"schema_version": 1, "version": "bench-eval" if evaluate else "bench-plain", "rules": [rule]}


def _args(case: int) -> dict[str, Any]:
    return {"model": SONNET, "max_tokens": 2000, "system": "You label support tickets. " * 40,
            "messages": [{"role": "user", "content": f"ticket {case}: the parcel never came"}],
            "extra_headers": {"x-sim-task": "classify", "x-sim-case": str(case)}}


def _sync_create(client: anthropic.Anthropic, case: int) -> None:
    client.messages.create(**_args(case))


def _sync_stream(client: anthropic.Anthropic, case: int) -> None:
    with client.messages.stream(**_args(case)) as stream:
        stream.get_final_message()


class _Sim:
    """The simulator in a subprocess, so its work does not share this process's interpreter lock."""

    def __init__(self, latency_scale: float) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from claude_sim.cli import main; sys.exit(main(sys.argv[1:]))",
             "--port", str(self.port), "--scenario", "default", "--seed", "7", "--latency-scale", str(latency_scale)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __enter__(self) -> _Sim:
        for _ in range(600):  # a bench may poll: wait for the port to answer
            try:
                urllib.request.urlopen(f"{self.base_url}/v1/models", timeout=1)
                return self
            except urllib.error.HTTPError:  # it answered (without a key: 401)
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the simulator did not start")

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        self._process.wait(timeout=30)


def _time_sync(sim: _Sim, calls: int, call: Callable[[anthropic.Anthropic, int], None]) -> list[float]:
    client = anthropic.Anthropic(base_url=sim.base_url, api_key="sk-bench", max_retries=0, timeout=300)
    seconds = []
    with otel_claude.task("classify"):
        for case in range(calls):
            start = time.perf_counter()
            call(client, case)
            seconds.append(time.perf_counter() - start)
    otel_claude.wait_for_evaluations(timeout=300)
    return seconds


async def _time_async(sim: _Sim, calls: int) -> list[float]:
    client = anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="sk-bench", max_retries=0, timeout=300)
    seconds = []
    with otel_claude.task("classify"):
        for case in range(calls):
            start = time.perf_counter()
            await client.messages.create(**_args(case))
            seconds.append(time.perf_counter() - start)
    await otel_claude.wait_for_evaluations_async()
    await client.close()
    return seconds


def _run(sim: _Sim, path: str, calls: int, evaluate: bool) -> list[float]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    otel_claude.instrument(policy=_policy(evaluate), policy_options={"reload_interval": 0},
                           tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        if path == "async create":
            return asyncio.run(_time_async(sim, calls))
        return _time_sync(sim, calls, _sync_create if path == "sync create" else _sync_stream)
    finally:
        otel_claude.uninstrument()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-scale", type=float, default=0.1)
    args = parser.parse_args(argv)
    print(f"caller latency, evaluation on (share 0.5) vs off; {args.calls} calls x {args.rounds} rounds per mode")
    print(f"{'path':14} {'off median ms':>14} {'sampled: on-off median ms':>26} {'p90 ms':>7} {'on/off':>7} "
          f"{'other: on-off median ms':>24} {'p90 ms':>7} {'on/off':>7}")
    with _Sim(args.latency_scale) as sim:
        for path in ("sync create", "sync stream", "async create"):
            off: list[list[float]] = []
            on: list[list[float]] = []
            for _ in range(args.rounds):
                off.append(_run(sim, path, args.calls, evaluate=False))
                on.append(_run(sim, path, args.calls, evaluate=True))
            # Per case, the fastest of its rounds: load only ever adds time.
            best_off = [min(r[case] for r in off) for case in range(args.calls)]
            best_on = [min(r[case] for r in on) for case in range(args.calls)]
            columns = []
            for parity in (1, 0):  # with share 0.5 the counter samples the odd-numbered calls
                cases = [case for case in range(args.calls) if case % 2 == parity]
                deltas = [(best_on[c] - best_off[c]) * 1000 for c in cases]
                ratio = sum(best_on[c] for c in cases) / sum(best_off[c] for c in cases)
                columns.append(f"{statistics.median(deltas):>{26 if parity else 24}.2f} {_pct(deltas, 0.9):>7.2f} "
                               f"{ratio:>7.3f}")
            print(f"{path:14} {statistics.median(best_off) * 1000:>14.1f} {columns[0]} {columns[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
