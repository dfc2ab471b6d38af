"""Soak: many mixed calls through the instrumented SDK; prints leaked spans, threads, sockets, fds and RSS over time.

    python bench/soak.py [--calls 20000] [--sample-every 2000] [--warmup 2000]

The simulator runs in a child process, so every thread, socket and file descriptor counted here belongs to the
client side: the SDK, OpenTelemetry (a BatchSpanProcessor writing OTLP JSON lines to a temporary file) and
otel-claude. Calls cycle through sync create, sync stream read to the end, sync stream abandoned after two events
without close() (its span ends when the stream is collected), the `.stream()` helper, and async create and stream
run 25 at a time. Figures after warm-up are compared with the end: leaks show as growth, not as absolute values.
The warm-up default is 10,000 calls because feedback() keeps the span contexts of the last 10,000 response ids
(a bounded index), so memory rightly grows until it is full.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import otel_claude

MODEL = "claude-haiku-4-5"
ARGS: dict[str, Any] = {"model": MODEL, "max_tokens": 30, "messages": [{"role": "user", "content": "Say hi."}]}
SYNC_MODES = ("create", "stream", "abandon", "helper")
ASYNC_BATCH = 25
# anthropic 0.x runs on httpx/httpcore, which deadlocks when the cyclic GC finalizes an abandoned stream while the
# same client's connection pool holds its lock (reproduced with the bare SDK). There, abandoned streams are
# collected at once, at a safe point; 2.x (httpx2) is left to collect them whenever the GC runs.
COLLECT_ABANDONED = anthropic.__version__.startswith("0.")


class OpenSpans(SpanProcessor):
    """Spans started and not yet ended, by count (the leak measure)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = 0
        self.ended = 0

    def on_start(self, span: Span, parent_context: object = None) -> None:
        with self._lock:
            self.started += 1

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self.ended += 1

    @property
    def open(self) -> int:
        return self.started - self.ended


@dataclass
class Sample:
    calls: int
    seconds: float
    rss_mb: float
    threads: int
    fds: int
    sockets: int
    open_spans: int


@dataclass
class Result:
    samples: list[Sample] = field(default_factory=list)
    calls: int = 0
    exported: int = 0
    open_spans_end: int = 0
    failures: int = 0


def _process_figures() -> tuple[float, int, int]:
    """(RSS MB, open fds, open sockets) of this process, from /proc."""
    with open("/proc/self/statm") as statm:
        rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    fds = sockets = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # the directory listing's own descriptor, already closed
        fds += 1
        sockets += target.startswith("socket:")
    return rss, fds, sockets


@contextmanager
def simulator() -> Iterator[str]:
    """The simulator in a child process on a free port; yields its base URL."""
    code = "import sys; from claude_sim.cli import main; sys.exit(main(sys.argv[1:]))"
    child = subprocess.Popen([sys.executable, "-c", code, "--port", "0", "--latency-scale", "0"],
                             stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline() if child.stdout else ""
        if "listening on " not in line:
            raise RuntimeError(f"simulator did not start: {line!r}")
        yield line.split("listening on ", 1)[1].split()[0]
    finally:
        child.terminate()
        child.wait(timeout=10)


def _sync_call(client: anthropic.Anthropic, mode: str) -> None:
    if mode == "create":
        client.messages.create(**ARGS)
    elif mode == "stream":
        for _ in client.messages.create(**ARGS, stream=True):
            pass
    elif mode == "abandon":
        stream = client.messages.create(**ARGS, stream=True)
        iterator = iter(stream)
        next(iterator)
        next(iterator)
        # Dropped without close(): the caller walked away mid-stream.
        del stream, iterator
        if COLLECT_ABANDONED:
            gc.collect(0)
    else:
        with client.messages.stream(**ARGS) as helper:
            helper.get_final_text()


async def _async_batch(base_url: str, size: int) -> int:
    async with anthropic.AsyncAnthropic(base_url=base_url, api_key="sk-soak", max_retries=0) as client:

        async def one(number: int) -> None:
            if number % 2:
                await client.messages.create(**ARGS)
            else:
                async for _ in await client.messages.create(**ARGS, stream=True):
                    pass

        results = await asyncio.gather(*(one(n) for n in range(size)), return_exceptions=True)
    return sum(isinstance(r, BaseException) for r in results)


def soak(calls: int, sample_every: int, out: Any = sys.stdout) -> Result:
    """Run `calls` calls (about a fifth of them async), sampling the process figures every `sample_every`."""
    result = Result()
    spans = OpenSpans()
    with tempfile.TemporaryDirectory() as tmp, simulator() as base_url:
        path = Path(tmp) / "spans.jsonl"
        provider = TracerProvider()
        provider.add_span_processor(spans)
        provider.add_span_processor(BatchSpanProcessor(otel_claude.OTLPJsonFileSpanExporter(path)))
        otel_claude.instrument(tracer_provider=provider, setup_providers=False)
        client = anthropic.Anthropic(base_url=base_url, api_key="sk-soak", max_retries=0)
        start = time.perf_counter()
        done = 0
        next_sample = 0
        print(f"{'calls':>7} {'seconds':>8} {'rss MB':>8} {'threads':>8} {'fds':>5} {'sockets':>8} {'open spans':>11}",
              file=out, flush=True)
        try:
            while done < calls:
                if done >= next_sample:
                    gc.collect()
                    rss, fds, sockets = _process_figures()
                    sample = Sample(done, time.perf_counter() - start, rss, threading.active_count(), fds, sockets,
                                    spans.open)
                    result.samples.append(sample)
                    print(f"{sample.calls:>7} {sample.seconds:>8.1f} {sample.rss_mb:>8.1f} {sample.threads:>8} "
                          f"{sample.fds:>5} {sample.sockets:>8} {sample.open_spans:>11}", file=out, flush=True)
                    next_sample += sample_every
                block = min(ASYNC_BATCH, calls - done)
                if (done // ASYNC_BATCH) % 5 == 4:
                    result.failures += asyncio.run(_async_batch(base_url, block))
                else:
                    for number in range(block):
                        try:
                            _sync_call(client, SYNC_MODES[(done + number) % len(SYNC_MODES)])
                        except anthropic.APIError:
                            result.failures += 1
                done += block
        finally:
            otel_claude.uninstrument()
            client.close()
        gc.collect()
        rss, fds, sockets = _process_figures()
        final = Sample(done, time.perf_counter() - start, rss, threading.active_count(), fds, sockets, spans.open)
        result.samples.append(final)
        print(f"{final.calls:>7} {final.seconds:>8.1f} {final.rss_mb:>8.1f} {final.threads:>8} {final.fds:>5} "
              f"{final.sockets:>8} {final.open_spans:>11}   (end, after gc)", file=out, flush=True)
        provider.shutdown()
        result.calls = done
        result.open_spans_end = spans.open
        result.exported = sum(line.count('"spanId"') for line in path.read_text().splitlines())
    return result


def report(result: Result, warmup: int, out: Any = sys.stdout) -> None:
    after = next((s for s in result.samples if s.calls >= warmup), result.samples[0])
    end = result.samples[-1]
    calls_after = max(end.calls - after.calls, 1)
    print(f"\ncalls {result.calls}, API errors {result.failures}, spans exported {result.exported}, "
          f"{result.calls / end.seconds:.0f} calls/s", file=out)
    print(f"leaked spans (open at the end, after gc): {result.open_spans_end}", file=out)
    print(f"threads after warm-up -> end: {after.threads} -> {end.threads} ({end.threads - after.threads:+d})",
          file=out)
    print(f"sockets after warm-up -> end: {after.sockets} -> {end.sockets} ({end.sockets - after.sockets:+d})",
          file=out)
    print(f"fds after warm-up -> end: {after.fds} -> {end.fds} ({end.fds - after.fds:+d})", file=out)
    print(f"RSS after warm-up ({after.calls} calls) -> end: {after.rss_mb:.1f} -> {end.rss_mb:.1f} MB "
          f"({(end.rss_mb - after.rss_mb) / calls_after * 1000:+.3f} MB per 1000 calls)", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--sample-every", type=int, default=2_000)
    parser.add_argument("--warmup", type=int, default=10_000, help="calls before the baseline sample")
    args = parser.parse_args(argv)
    result = soak(args.calls, args.sample_every)
    report(result, args.warmup)
    return 0 if result.open_spans_end == 0 and result.exported >= result.calls else 1


if __name__ == "__main__":
    sys.exit(main())
