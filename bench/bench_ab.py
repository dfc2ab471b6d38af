"""This tree's otel-claude against another checkout's, on the same calls, batches interleaved in one process.

    python bench/bench_ab.py --baseline /path/to/other/checkout [--rounds 30] [--calls 300]

`bench_instrument.py` compares modes within one tree; comparing two trees with it means two runs, and on a shared
machine the difference between runs (tens of microseconds) hides a change of a few. Here the baseline's package is
imported under another name (`otel_claude_baseline`) beside this tree's, and each round instruments the SDK with
one, times a batch of calls, uninstruments, and does the same with the other, in alternating order, so both see the
same load. A version's figure is its best batch (load only adds time); the spread of the per-round differences
says how far to trust the difference of the bests. Calls: `messages.create` through the real `anthropic` client
over an in-process mock transport, real OpenTelemetry SDK (spans in memory, metrics read at the end of each batch),
a task label and no policy (the path every un-sampled call takes), or with `--policy` a rule that only has an
`evaluate` block whose share never samples (the path of a rule's un-sampled calls).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import anthropic
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_claude

try:
    import httpx2 as httpx
except ImportError:  # anthropic 0.x
    import httpx  # type: ignore[no-redef]

MODEL = "claude-sonnet-4-6"
ARGS: dict[str, Any] = {"model": MODEL, "max_tokens": 1024, "system": "You classify support tickets.",
                        "messages": [{"role": "user", "content": "My order never arrived."}]}
BODY = json.dumps({"id": "msg_ab", "type": "message", "role": "assistant", "model": MODEL,
                   "content": [{"type": "text", "text": "Shipping issue."}], "stop_reason": "end_turn",
                   "stop_sequence": None, "usage": {"input_tokens": 40, "output_tokens": 4}}).encode()


def _import_baseline(checkout: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "otel_claude_baseline", checkout / "otel_claude" / "__init__.py",
        submodule_search_locations=[str(checkout / "otel_claude")])
    if spec is None or spec.loader is None:
        raise SystemExit(f"no otel_claude package under {checkout}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["otel_claude_baseline"] = module
    spec.loader.exec_module(module)
    return module


def _client() -> anthropic.Anthropic:
    transport = httpx.MockTransport(lambda request: httpx.Response(
        200, headers={"content-type": "application/json", "request-id": "req_ab"}, content=BODY))
    kwargs: dict[str, Any] = {"api_key": "sk-bench", "base_url": "http://bench.local", "max_retries": 0,
                              "http_client": httpx.Client(transport=transport)}
    if "open_telemetry" in anthropic.Anthropic.__init__.__code__.co_varnames:
        kwargs["open_telemetry"] = False
    return anthropic.Anthropic(**kwargs)


def _batch(package: ModuleType, client: anthropic.Anthropic, calls: int, policy: Any) -> float:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    package.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, policy=policy,
                       setup_providers=False)
    try:
        with package.task("classify"):
            client.messages.create(**ARGS)  # warm: first-call memos
        gc.collect()
        gc.disable()
        start = time.process_time()
        with package.task("classify"):
            for _ in range(calls):
                client.messages.create(**ARGS)
        reader.collect()  # the histogram records the calls queued
        seconds = time.process_time() - start
        gc.enable()
    finally:
        package.uninstrument()
    return seconds / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="a checkout whose otel_claude/ is the baseline")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--policy", action="store_true", help="a rule with an evaluate block that never samples")
    args = parser.parse_args(argv)
    baseline = _import_baseline(args.baseline.resolve())
    policy = None
    if args.policy:
        # share 1e-9: the counter's first sample would be call one billion.
        policy = {"schema_version": 1, "version": "ab", "rules": [{"task": "classify", "max_tokens": 512}]}
    versions = {"this tree": (otel_claude, policy), "baseline": (baseline, policy)}
    if args.policy:
        evaluate = {"model": "claude-haiku-4-5", "share": 1e-9}
        versions["this tree"] = (otel_claude, {**policy, "rules": [{**policy["rules"][0], "evaluate": evaluate}]})
    client = _client()
    times: dict[str, list[float]] = {name: [] for name in versions}
    for round_number in range(args.rounds):
        order = list(versions) if round_number % 2 == 0 else list(reversed(versions))
        for name in order:
            package, used_policy = versions[name]
            times[name].append(_batch(package, client, args.calls, used_policy))
    diffs = [a - b for a, b in zip(times["this tree"], times["baseline"], strict=True)]
    print(f"messages.create, CPU us per call, best of {args.rounds} batches of {args.calls}"
          f"{' (policy: cap rule; this tree adds an evaluate block that never samples)' if args.policy else ''}")
    for name, values in times.items():
        print(f"  {name:10} best {min(values):8.1f}   median {statistics.median(values):8.1f}")
    print(f"  this tree - baseline: best {min(times['this tree']) - min(times['baseline']):+.1f} us; per-round "
          f"difference median {statistics.median(diffs):+.1f} us (quartiles {statistics.quantiles(diffs, n=4)[0]:+.1f}"
          f" / {statistics.quantiles(diffs, n=4)[2]:+.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
