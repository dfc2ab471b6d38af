"""Added latency per API call while the OTLP trace endpoint is down, stalled or slow, against a healthy one.

    python bench/bench_exporter_down.py [--calls 400] [--rounds 5]

Each mode is the real stack: otel_claude.instrument() with a BatchSpanProcessor (default settings) and the OTLP
HTTP span exporter, the real SDK calling the simulator (a child process) over loopback. Modes:

  bare      not instrumented (the floor)
  healthy   exporter target answers 200 at once (the baseline for "added")
  down      exporter target is a closed loopback port (connection refused, exporter retries with backoff)
  stalled   exporter target accepts the request and never answers (exporter waits for its timeout)
  slow      exporter target answers after 0.5 s

Modes are interleaved round by round, so drift on a shared machine hits all of them alike. Per-call wall time is
reported as median and p99 over all rounds, and the difference to `healthy` is the cost of the broken endpoint.
"""

from __future__ import annotations

import argparse
import logging
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import anthropic
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from soak import ARGS, simulator

import otel_claude
from claude_sim.collector import CollectorStub


def closed_port_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1/traces"


@contextmanager
def endpoints() -> Iterator[tuple[dict[str, str | None], dict[str, CollectorStub]]]:
    with ExitStack() as stack:
        collectors = {mode: stack.enter_context(CollectorStub(delay))
                      for mode, delay in (("healthy", 0.0), ("stalled", None), ("slow", 0.5))}
        yield ({"bare": None, "healthy": collectors["healthy"].traces_endpoint, "down": closed_port_endpoint(),
                "stalled": collectors["stalled"].traces_endpoint, "slow": collectors["slow"].traces_endpoint},
               collectors)


def timed_calls(client: anthropic.Anthropic, calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        client.messages.create(**ARGS)
        times.append(time.perf_counter() - start)
    return times


class ExportFailures(logging.Handler):
    """Counts the exporter's failed attempts (its log lines), which also keeps them off the terminal."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def run(calls: int, rounds: int) -> tuple[dict[str, list[float]], dict[str, int]]:
    times: dict[str, list[float]] = {}
    with simulator() as base_url, endpoints() as (targets, collectors):
        client = anthropic.Anthropic(base_url=base_url, api_key="sk-bench", max_retries=0)
        providers = {}
        for mode, endpoint in targets.items():
            if endpoint is not None:
                provider = TracerProvider()
                # Exports every 0.2 s instead of 5 s, so many export attempts fall inside each measured round.
                processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=200)
                provider.add_span_processor(processor)
                providers[mode] = provider
        timed_calls(client, 200)  # warm-up: connections, imports, caches
        for _ in range(rounds):
            for mode in targets:
                provider = providers.get(mode)
                if provider is not None:
                    otel_claude.instrument(tracer_provider=provider, setup_providers=False)
                try:
                    times.setdefault(mode, []).extend(timed_calls(client, calls))
                finally:
                    if provider is not None:
                        otel_claude.uninstrument()
        requests = {mode: collector.requests for mode, collector in collectors.items()}
        for provider in providers.values():
            # Shutting down a processor stuck on a dead endpoint waits out the exporter: not part of any call.
            threading.Thread(target=provider.shutdown, daemon=True).start()
    return times, requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=400, help="calls per mode per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    failures = ExportFailures()
    exporter_log = logging.getLogger("opentelemetry.exporter")
    exporter_log.addHandler(failures)
    exporter_log.propagate = False
    times, requests = run(args.calls, args.rounds)
    base = statistics.median(times["healthy"])
    print(f"{'mode':<8} {'calls':>6} {'median ms':>10} {'p99 ms':>8} {'max ms':>8} {'added vs healthy (median)':>26}")
    for mode, values in times.items():
        ordered = sorted(values)
        median = statistics.median(ordered)
        p99 = ordered[int(len(ordered) * 0.99) - 1]
        print(f"{mode:<8} {len(values):>6} {median * 1e3:>10.3f} {p99 * 1e3:>8.3f} {ordered[-1] * 1e3:>8.2f} "
              f"{(median - base) * 1e6:>+22.0f} us")
    print(f"\nexport requests received: healthy {requests['healthy']}, stalled {requests['stalled']}, slow "
          f"{requests['slow']}; failed export attempts logged (down, stalled): {failures.count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
