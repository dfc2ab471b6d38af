"""CPU cost per call of otel-claude, against the bare SDK and the SDK's own tracing, measured in one run.

    python bench/bench_instrument.py [--rounds 7] [--calls 1500] [--streams 200]

Every mode drives the same real `anthropic` client over an in-process mock transport (so the network does not
drown the numbers) with a real OpenTelemetry SDK exporting spans and metrics in memory. Modes are interleaved
batch by batch, and each mode's per-call CPU time (process_time) is the minimum over its batches: other load on the
machine only ever adds time, so the fastest batch is the best estimate of the true cost (as timeit advises); the
cyclic garbage collector is paused while a batch is timed, as timeit does.

Paths: `create`, `stream=True` (200 events), the `.stream()` helper, and `create` with the transcript of a chat
and of a tool-using agent at their 20th turn (answers resent as the SDK's objects): the request summary reads every
message and hashes the conversation keys, so its cost grows with the transcript. After the table, the request
summary alone is timed on each request body.

Modes:
  bare         no tracing at all (SDK tracing switched off on the client)
  sdk          the SDK's own tracing (anthropic >= 1.14), global provider, no otel-claude
  otel-claude  otel_claude.instrument() with spans and metrics (SDK span suppressed)
  +cap         as otel-claude, with a policy whose rule only lowers max_tokens
  +policy      as otel-claude, with a policy whose rule routes, caps max_tokens and adds cache breakpoints
  +limit       as +cap, plus a policy limit on the model that the calls never come near (the limiter's admission
               and release under no load: `+limit - +cap` is what the limiter adds per call)
  floor        no otel-claude logic at all: only the OpenTelemetry SDK work for the same telemetry (a span with the
               attributes otel-claude puts on this path, its context attached around the HTTP work, and the same
               histogram records with the same labels). What otel-claude adds above this is its own code.

otel-claude records its histogram measurements in batches (at metric collection, or every 1024 calls); each batch
ends by recording whatever is still queued, so every mode pays for all the work its calls caused.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import anthropic
from anthropic.types import TextBlock, ToolUseBlock
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_claude
from otel_claude import semconv
from otel_claude._telemetry import Telemetry

try:
    import httpx2 as httpx
except ImportError:  # anthropic 0.x
    import httpx  # type: ignore[no-redef]

SDK_MAJOR = int(anthropic.__version__.split(".")[0])
SDK_TRACES = SDK_MAJOR >= 2 or (SDK_MAJOR == 1 and int(anthropic.__version__.split(".")[1]) >= 14)
MODEL = "claude-sonnet-4-6"
ARGS: dict[str, Any] = {
    "model": MODEL,
    "max_tokens": 1024,
    "system": "You classify support tickets.",
    "messages": [{"role": "user", "content": "My order never arrived."}],
}
POLICY = {
    "schema_version": 1,
    "version": "bench",
    "rules": [{"task": "classify", "model": "claude-haiku-4-5", "max_tokens": 256, "cache": {"ttl": "5m"}}],
}
# A rule that changes only max_tokens: enforcement without the SDK serialising a restructured request body.
POLICY_CAP = {"schema_version": 1, "version": "bench-cap", "rules": [{"task": "classify", "max_tokens": 256}]}
TURNS = 20


def _words(n: int, salt: int) -> str:
    """About n characters of text that differs by salt (a transcript of distinct turns, as real ones are)."""
    return " ".join(f"w{(salt * 7919 + i) % 9973}" for i in range(n // 6))


def _chat(turns: int) -> list[dict[str, Any]]:
    """A chat transcript at its `turns`-th request: the answers resent as the SDK returned them (model objects)."""
    messages: list[dict[str, Any]] = []
    for turn in range(turns - 1):
        messages.append({"role": "user", "content": _words(300, 2 * turn)})
        messages.append({"role": "assistant", "content": [TextBlock(type="text", text=_words(1200, 2 * turn + 1))]})
    messages.append({"role": "user", "content": _words(300, 2 * turns)})
    return messages


def _agent(turns: int) -> list[dict[str, Any]]:
    """A tool-using agent's transcript at its `turns`-th request: a tool call and a 2,000-character result a turn."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": _words(400, 0)}]
    for turn in range(turns - 1):
        call_id = f"toolu_{turn:024d}"
        messages.append({"role": "assistant", "content": [
            TextBlock(type="text", text=_words(120, turn)),
            ToolUseBlock(type="tool_use", id=call_id, name="read_file", input={"path": f"src/module_{turn}.py"}),
        ]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call_id, "content": _words(2000, turn + 100)}]})
    return messages


CHAT_ARGS = {**ARGS, "system": "You are a helpful assistant.", "messages": _chat(TURNS)}
AGENT_ARGS = {**ARGS, "system": "You are a coding agent.", "messages": _agent(TURNS),
              "tools": [{"name": "read_file", "description": "Read a file.",
                         "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]}

# The same, with a limit on the model far above anything this loop reaches: every call is admitted at once.
POLICY_LIMIT = {**POLICY_CAP, "version": "bench-limit", "limits": [{
    "models": [MODEL], "concurrency": 10_000, "requests_per_minute": 10**8, "input_tokens_per_minute": 10**10,
    "output_tokens_per_minute": 10**10}]}


def _message_body() -> bytes:
    return json.dumps(
        {
            "id": "msg_bench",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": [{"type": "text", "text": "Shipping issue."}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 120,
                "output_tokens": 4,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
    ).encode()


def _sse_body(events: int) -> bytes:
    def ev(name: str, data: dict[str, Any]) -> str:
        return f"event: {name}\ndata: {json.dumps(data)}\n\n"

    deltas = events - 6
    parts = [
        ev(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_bench",
                    "type": "message",
                    "role": "assistant",
                    "model": MODEL,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 120, "output_tokens": 1},
                },
            },
        ),
        ev(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        ev("ping", {"type": "ping"}),
    ]
    parts += [
        ev(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "word "}},
        )
    ] * deltas
    parts += [
        ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ev(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": deltas},
            },
        ),
        ev("message_stop", {"type": "message_stop"}),
    ]
    return "".join(parts).encode()


def _transport(sse: bytes, body: bytes) -> Any:
    def handler(request: Any) -> Any:
        if json.loads(request.content).get("stream"):
            return httpx.Response(
                200, headers={"content-type": "text/event-stream", "request-id": "req_b"}, content=sse
            )
        return httpx.Response(200, headers={"content-type": "application/json", "request-id": "req_b"}, content=body)

    return httpx.MockTransport(handler)


def _client(transport: Any, *, sdk_tracing: bool) -> anthropic.Anthropic:
    kwargs: dict[str, Any] = {
        "api_key": "sk-bench",
        "base_url": "http://bench.local",
        "max_retries": 0,
        "http_client": httpx.Client(transport=transport),
    }
    if SDK_TRACES and not sdk_tracing:
        kwargs["open_telemetry"] = False
    return anthropic.Anthropic(**kwargs)


PATHS: dict[str, Callable[[anthropic.Anthropic], None]] = {}


def path(name: str) -> Callable[[Callable[[anthropic.Anthropic], None]], Callable[[anthropic.Anthropic], None]]:
    def register(fn: Callable[[anthropic.Anthropic], None]) -> Callable[[anthropic.Anthropic], None]:
        PATHS[name] = fn
        return fn

    return register


@path("create")
def _create(client: anthropic.Anthropic) -> None:
    with otel_claude.task("classify"):
        client.messages.create(**ARGS)


@path("stream=True (200 events)")
def _stream(client: anthropic.Anthropic) -> None:
    with otel_claude.task("classify"):
        for _ in client.messages.create(**ARGS, stream=True):
            pass


@path(f"create, {TURNS}-turn chat")
def _create_chat(client: anthropic.Anthropic) -> None:
    with otel_claude.task("classify"):
        client.messages.create(**CHAT_ARGS)


@path(f"create, {TURNS}-turn agent")
def _create_agent(client: anthropic.Anthropic) -> None:
    with otel_claude.task("classify"):
        client.messages.create(**AGENT_ARGS)


@path(".stream() helper")
def _helper(client: anthropic.Anthropic) -> None:
    with otel_claude.task("classify"), client.messages.stream(**ARGS) as stream:
        for _ in stream.text_stream:
            pass
        stream.get_final_message()


def _measure(
    fn: Callable[[anthropic.Anthropic], None], client: anthropic.Anthropic, n: int, settle: Callable[[], None]
) -> float:
    # As timeit does: the cyclic GC off while timing, so when a collection happens to fall does not decide
    # which mode looks slower; each batch starts from a collected heap. `settle` does work the calls deferred.
    gc.collect()
    gc.disable()
    try:
        start = time.process_time()
        for _ in range(n):
            fn(client)
        settle()
        return (time.process_time() - start) / n * 1e6
    finally:
        gc.enable()


# What otel-claude sets when a call ends (the response, its usage and what follows from them); the rest is set at start.
_END_PREFIXES = (
    "gen_ai.response.", "gen_ai.usage.", "anthropic.",
    semconv.COST_USD, semconv.RETRIES, semconv.STREAM_COMPLETE, semconv.TIME_PER_OUTPUT_TOKEN,
)


class Floor:
    """The OpenTelemetry work of one otel-claude call and nothing else, replayed around the SDK's `request`.

    Its telemetry is copied from a call otel-claude really traced on the same path (`learn`), so the floor has the
    same span name, attributes (split into start and end as otel-claude sets them) and histogram records.
    """

    def __init__(self, tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
        self.tracer = tracer_provider.get_tracer("bench.floor")
        meter = meter_provider.get_meter("bench.floor")
        self.histograms = [meter.create_histogram(f"bench.floor.{i}") for i in range(4)]
        self.name = ""
        self.start: dict[str, Any] = {}
        self.end: dict[str, Any] = {}
        self.labels: dict[str, Any] = {}
        self.records = 0
        self.pending = 0
        self._sdk = importlib.import_module("anthropic._base_client")
        self._original = self._sdk.SyncAPIClient.request

    def learn(self, span: ReadableSpan) -> None:
        attrs = dict(span.attributes or {})
        self.name = span.name
        self.end = {k: v for k, v in attrs.items() if k.startswith(_END_PREFIXES)}
        self.start = {k: v for k, v in attrs.items() if k not in self.end}
        keys = (semconv.GEN_AI_OPERATION_NAME, semconv.GEN_AI_PROVIDER_NAME, semconv.GEN_AI_REQUEST_MODEL, semconv.TASK)
        self.labels = {k: attrs[k] for k in keys if k in attrs}
        # Duration always; input and output tokens when usage came back; time to first chunk on streams.
        self.records = 1 + 2 * (semconv.GEN_AI_USAGE_OUTPUT_TOKENS in attrs)
        self.records += semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in attrs

    def install(self) -> None:
        floor, original = self, self._original

        def request(client: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
            span = floor.tracer.start_span(
                floor.name, kind=trace.SpanKind.CLIENT, attributes=dict(floor.start), start_time=time.time_ns()
            )
            token = otel_context.attach(trace.set_span_in_context(span))
            try:
                result = original(client, cast_to, options, *args, **kwargs)
            finally:
                otel_context.detach(token)
            span.set_attributes(floor.end)
            span.end()
            floor.pending += 1
            return result

        self._sdk.SyncAPIClient.request = request

    def uninstall(self) -> None:
        self._sdk.SyncAPIClient.request = self._original
        self.pending = 0

    def settle(self) -> None:
        labels, records = self.labels, self.histograms[: self.records]
        for _ in range(self.pending):
            for histogram in records:
                histogram.record(1.0, labels)
        self.pending = 0


def _policy_apply_us(n: int = 20000) -> float:
    """CPU time of the policy step alone (rule match, rewrite of the body), the part the +policy mode adds."""
    from types import SimpleNamespace

    from otel_claude._policy_engine import PolicyEngine
    from otel_claude._request import summarize_request

    engine = PolicyEngine.from_source(POLICY)
    assert engine is not None
    body = {**ARGS}
    info = summarize_request(body)
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(n):
            options = SimpleNamespace(json_data=body, extra_json=None)
            engine.apply(options, body, info, "classify", False)
        best = min(best, (time.process_time() - start) / n * 1e6)
    return best


def _summary_us(body: dict[str, Any], n: int = 2000) -> float:
    """CPU time of reading one request body (sizes, breakpoints, fingerprints), the same body again and again."""
    from otel_claude._request import summarize_request

    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(n):
            summarize_request(body)
        best = min(best, (time.process_time() - start) / n * 1e6)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=300, help="non-streaming calls per batch")
    parser.add_argument("--streams", type=int, default=30, help="streamed calls per batch")
    parser.add_argument("--only", choices=sorted(PATHS), action="append", help="measure only this path (repeatable)")
    args = parser.parse_args(argv)
    paths = {name: fn for name, fn in PATHS.items() if not args.only or name in args.only}

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(tracer_provider)  # what the SDK's own tracing uses
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    transport = _transport(_sse_body(200), _message_body())
    clients = {"bare": _client(transport, sdk_tracing=False), "sdk": _client(transport, sdk_tracing=True)}

    modes = ["bare", "sdk", "otel-claude", "+cap", "+limit", "+policy", "floor"]
    if not SDK_TRACES:
        modes.remove("sdk")
    policies = {"+cap": POLICY_CAP, "+limit": POLICY_LIMIT, "+policy": POLICY}
    instrumented = ("otel-claude", *policies)
    telemetry = Telemetry.for_providers(tracer_provider, meter_provider)
    floors = {name: Floor(tracer_provider, meter_provider) for name in paths}
    results: dict[tuple[str, str], list[float]] = {}
    for round_number in range(args.rounds):
        for path_name, fn in paths.items():
            n = args.calls if path_name.startswith("create") else args.streams
            floor = floors[path_name]
            for mode in modes:
                settle: Callable[[], None] = telemetry.flush
                if mode in instrumented:
                    otel_claude.instrument(
                        tracer_provider=tracer_provider, meter_provider=meter_provider, policy=policies.get(mode)
                    )
                elif mode == "floor":
                    floor.install()
                    settle = floor.settle
                client = clients["sdk" if mode == "sdk" else "bare"]
                try:
                    fn(client)  # warm-up: caches, lazy imports
                    results.setdefault((path_name, mode), []).append(_measure(fn, client, n, settle))
                    if mode == "otel-claude":
                        floor.learn(exporter.get_finished_spans()[-1])
                finally:
                    if mode in instrumented:
                        otel_claude.uninstrument()
                    elif mode == "floor":
                        floor.uninstall()
                exporter.clear()
        print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)

    print(f"anthropic {anthropic.__version__}, CPU microseconds per call (best of {args.rounds} batches)")
    for path_name in paths:
        bare = sorted(results[(path_name, "bare")])
        spread = bare[len(bare) // 2] - bare[0]
        print(f"  noise on {path_name}: the bare SDK's median batch is {spread:.0f} us above its best")
    print()
    header = f"{'path':<26}" + "".join(f"{m:>13}" for m in modes) + f"{'added(otel)':>13}"
    header += f"{'added(sdk)':>12}{'otel/sdk':>10}{'policy':>9}" if SDK_TRACES else f"{'policy':>9}"
    print(header)
    verdicts = []
    for path_name in paths:
        med = {m: min(results[(path_name, m)]) for m in modes}
        added = med["otel-claude"] - med["bare"]
        line = f"{path_name:<26}" + "".join(f"{med[m]:>13.1f}" for m in modes) + f"{added:>13.1f}"
        policy_cost = med["+policy"] - med["otel-claude"]
        cap_cost = med["+cap"] - med["otel-claude"]
        if SDK_TRACES:
            sdk_added = med["sdk"] - med["bare"]
            ratio = added / sdk_added if sdk_added > 0 else float("nan")
            line += f"{sdk_added:>12.1f}{ratio:>10.2f}{policy_cost:>9.1f}"
            verdicts.append(f"{path_name}: otel-claude adds {ratio:.2f}x what SDK tracing adds (target <= 0.5)")
        else:
            line += f"{policy_cost:>9.1f}"
        if path_name == "create":
            verdicts.append(f"create: otel-claude adds {added:.1f} us (target <= 100 us)")
        floor_added = med["floor"] - med["bare"]
        verdicts.append(f"{path_name}: the OpenTelemetry SDK's work for the same telemetry (floor) adds "
                        f"{floor_added:.1f} us; otel-claude's own code {added - floor_added:.1f} us")
        verdicts.append(f"{path_name}: policy enforcement adds {cap_cost:.1f} us capping max_tokens, "
                        f"{policy_cost:.1f} us rerouting + capping + 2 cache breakpoints (target <= 20 us)")
        verdicts.append(f"{path_name}: a policy limit far from binding adds {med['+limit'] - med['+cap']:.1f} us "
                        "to the capping policy (target <= 5 us)")
        print(line)
    apply_us = _policy_apply_us()
    verdicts.append(f"policy step alone (match + route + cap + cache breakpoints): {apply_us:.1f} us (target <= 20 us)")
    for label, body in (("1-turn", ARGS), (f"{TURNS}-turn chat", CHAT_ARGS), (f"{TURNS}-turn agent", AGENT_ARGS)):
        verdicts.append(f"request summary alone, {label} request: {_summary_us(body):.1f} us")
    print()
    for verdict in verdicts:
        print(verdict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
