"""End to end for conversation caching: chats with known think times, through the real SDK and the simulator's
prompt cache -> OTLP JSON spans -> tuner -> policy. The tuned conversation TTL is then checked against every
alternative run on the same conversations (the best policy, measured), and its predicted history hit rate against
the rate the enforced run reaches."""

from __future__ import annotations

import bisect
import random
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import anthropic
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

pytest.importorskip("sklearn")

import otel_claude
from claude_sim import SimServer
from otel_claude import OTLPJsonFileSpanExporter
from otel_claude.policy import CacheAction, Policy, dump_policy, load_policy_text
from tuner._ingest import load_dataset
from tuner.cli import main as tune

MODEL = "claude-sonnet-4-6"
SYSTEM = "You are a friendly assistant for a garden centre; answer in a few sentences. " * 80  # ~1,600 tokens
EPOCH_NS = 1_800_000_000 * 10**9
CONVERSATIONS, TURNS = 36, 6


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScenarioTime(SpanExporter):
    """Exports each span as starting at the scenario time of its call (durations kept): the tuner must see the
    users' think time, which the test skips rather than waits."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.walls: list[int] = []
        self.shifts: list[int] = []

    def mark(self, scenario_seconds: float) -> None:
        wall = time.time_ns()
        self.walls.append(wall)
        self.shifts.append(EPOCH_NS + int(scenario_seconds * 1e9) - wall)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        moved = []
        for span in spans:
            assert span.start_time is not None and span.end_time is not None
            shift = self.shifts[bisect.bisect_right(self.walls, span.start_time) - 1]
            moved.append(ReadableSpan(
                name=span.name, context=span.context, parent=span.parent, resource=span.resource,
                attributes=span.attributes, events=span.events, links=span.links, kind=span.kind,
                status=span.status, start_time=span.start_time + shift, end_time=span.end_time + shift,
                instrumentation_scope=span.instrumentation_scope))
        return self.inner.export(moved)

    def shutdown(self) -> None:
        self.inner.shutdown()


def schedule(think_median: float, seed: int) -> list[tuple[float, int, int]]:
    """(scenario time, conversation, turn): conversations start over two hours; users think a log-normal time."""
    rng = random.Random(seed)
    events = []
    for conversation in range(CONVERSATIONS):
        at = rng.uniform(0, 7200)
        for turn in range(TURNS):
            events.append((at, conversation, turn))
            at += rng.lognormvariate(0, 0.6) * think_median
    return sorted(events)


def run(events: list[tuple[float, int, int]], out: Path, policy: Policy | None) -> float:
    """The chats under a policy (None: none), on a simulator of their own (an empty cache); the cost per call
    they incurred, as their spans record it."""
    exporter = ScenarioTime(OTLPJsonFileSpanExporter(str(out)))
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel_claude.instrument(tracer_provider=provider, policy=policy, setup_providers=False)
    clock = Clock()
    transcripts: dict[int, list[dict[str, Any]]] = {}
    try:
        with SimServer(seed=7, clock=clock) as sim, otel_claude.task("chat"):
            client = anthropic.Anthropic(base_url=sim.base_url, api_key="sk-test", max_retries=0, timeout=60)
            for at, conversation, turn in events:
                clock.now = at
                exporter.mark(at)
                messages = transcripts.setdefault(conversation, [])
                messages.append({"role": "user", "content": f"Conversation {conversation}, question {turn}: "
                                                            + "which plants suit a shady balcony? " * 12})
                reply = client.messages.create(model=MODEL, max_tokens=300, system=SYSTEM, messages=messages)
                messages.append({"role": "assistant", "content": reply.content})
    finally:
        otel_claude.uninstrument()
        provider.shutdown()
    dataset, _ = load_dataset([str(out)])
    model = next(m for m in dataset.models if m.task == "chat")
    return model.cost_per_call


def with_conversation_ttl(policy: Policy, ttl: str) -> Policy:
    rules = []
    for rule in policy.rules:
        cache = rule.cache or CacheAction(ttl="none")
        prefix_ttl = "1h" if ttl == "1h" and cache.ttl == "5m" else cache.ttl  # the API's order rule
        rules.append(replace(rule, cache=replace(cache, ttl=prefix_ttl, conversation_ttl=ttl)))
    return replace(policy, rules=tuple(rules))


@pytest.mark.parametrize(("think_median", "expected"), [(60.0, "5m"), (1500.0, "1h")])
def test_tuned_conversation_caching_is_the_cheapest_and_predicts_its_hit_rate(
    tmp_path: Path, think_median: float, expected: str
) -> None:
    events = schedule(think_median, seed=7)
    baseline = run(events, tmp_path / "baseline.jsonl", None)
    policy_path = tmp_path / "policy.yaml"
    assert tune([str(tmp_path / "baseline.jsonl"), "-o", str(policy_path), "--no-progress"]) == 0
    tuned = load_policy_text(policy_path.read_text(), str(policy_path))
    rule = next(r for r in tuned.rules if r.task == "chat")
    assert rule.cache is not None and rule.cache.conversation_ttl == expected, rule.evidence["conversation"]
    costs = {}
    for ttl in ("none", "5m", "1h"):
        variant = with_conversation_ttl(tuned, ttl)
        (tmp_path / f"{ttl}.yaml").write_text(dump_policy(variant))
        costs[ttl] = run(events, tmp_path / f"{ttl}.jsonl", variant)
    best = min(costs.values())
    assert costs[expected] <= 1.05 * best, costs
    assert costs[expected] < 0.8 * baseline
    # The enforced run reads as much of the history as the tuner said it would.
    predicted = rule.evidence["conversation"]["predicted_history_hit_rate"][expected]
    dataset, _ = load_dataset([str(tmp_path / f"{expected}.jsonl")])
    stats = dataset.conversation("chat")
    assert stats is not None
    realised = stats.history_read / stats.history_tokens
    assert abs(realised - predicted) <= 0.05, (realised, predicted)
