"""Conversation caching, decided by the tuner, against the best of the alternatives measured on the same traffic.

    python bench/bench_conversation.py [--calls 2000] [--seed 11]

Workload: two tasks through the real SDK, instrumented, against the simulator's prompt cache (exact prefixes,
TTLs with refresh, 20-block lookback), on a clock the driver moves instead of waiting:
  chat   users ask 3-10 questions, thinking a log-normal time between them (median 2 min, long tail);
  agent  a tool loop of 4-12 rounds: the model calls a tool, the result (1-4 KB) comes back after a log-normal
         tool latency (median 4 s); one round in five runs 12 tools in parallel (24 new blocks: further back than
         one cache read looks, so the policy's intermediate breakpoint matters).
Spans are exported as OTLP JSON with their scenario start times, as a tuner would read them from a service.

Rounds: (1) `--calls` calls without a policy -> tune; (2) `--calls` calls under that policy -> tune again (the
decision must survive re-tuning on traffic it shaped); then one evaluation schedule run under the final policy
and under the same policy with the conversation TTL of every task set to none, 5m and 1h. Printed per task: cost
per call of each, the tuned choice's ratio to the cheapest (target <= 1.05), and the history hit rate the tuner
predicted against the one the evaluation run reached (target: within 5 points).
"""

from __future__ import annotations

import argparse
import bisect
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anthropic
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import otel_claude
from claude_sim import SimServer
from otel_claude import OTLPJsonFileSpanExporter
from otel_claude.policy import CacheAction, Policy, load_policy_text
from tuner._ingest import load_dataset
from tuner.cli import main as tune

MODEL = "claude-sonnet-4-6"
EPOCH_NS = 1_800_000_000 * 10**9
SYSTEMS = {
    "chat": "You are a friendly assistant for a garden centre; answer in a few sentences. " * 80,
    "agent": "You are a coding agent. Read files with the tool before you answer; explain what you found. " * 60,
}
TOOLS = [{"name": "read_file", "description": "Read a file of the repository.",
          "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]
TTLS = ("none", "5m", "1h")


@dataclass(frozen=True)
class Turn:
    at: float  # scenario seconds
    task: str
    session: int
    number: int
    parallel: int = 1  # agent: tools run in this round


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScenarioTime(SpanExporter):
    """Exports each span as starting at the scenario time of its call (durations kept)."""

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


def chats(sessions: int, turns: tuple[int, int], think_median: float, seed: int,
          window: float = 4 * 3600.0, sigma: float = 0.9) -> list[Turn]:
    """Chat sessions starting uniformly over `window` seconds; log-normal think time between turns."""
    rng = random.Random(seed)
    out = []
    for session in range(sessions):
        at = rng.uniform(0, window)
        for number in range(rng.randint(*turns)):
            out.append(Turn(at, "chat", session, number))
            at += rng.lognormvariate(0, sigma) * think_median
    return out


def agents(sessions: int, rounds: tuple[int, int], latency_median: float, seed: int,
           window: float = 4 * 3600.0) -> list[Turn]:
    rng = random.Random(seed + 1)
    out = []
    for session in range(sessions):
        at = rng.uniform(0, window)
        for number in range(rng.randint(*rounds)):
            out.append(Turn(at, "agent", session, number, 12 if number and rng.random() < 0.2 else 1))
            at += rng.lognormvariate(0, 0.7) * latency_median
    return out


def _question(turn: Turn) -> str:
    return f"Session {turn.session}, question {turn.number}: which plants suit a shady balcony? " * 8


def _results(turn: Turn, calls: list[Any]) -> list[dict[str, Any]]:
    rng = random.Random(turn.session * 1000 + turn.number)
    blocks = []
    for index in range(turn.parallel):
        call_id = calls[index].id if index < len(calls) else f"toolu_{turn.session:08d}{turn.number:06d}{index:04d}"
        text = f"file {turn.session}/{turn.number}/{index}: " + "def handler(request): return respond(request)\n" * \
            rng.randint(20, 80)
        blocks.append({"type": "tool_result", "tool_use_id": call_id, "content": text})
    return blocks


def run(schedule: list[Turn], out: Path, policy: Policy | None) -> None:
    """The sessions under a policy (None: none), on a simulator of their own (an empty cache)."""
    exporter = ScenarioTime(OTLPJsonFileSpanExporter(str(out)))
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel_claude.instrument(tracer_provider=provider, policy=policy, setup_providers=False)
    clock = Clock()
    transcripts: dict[tuple[str, int], list[dict[str, Any]]] = {}
    try:
        with SimServer(seed=7, clock=clock) as sim:
            client = anthropic.Anthropic(base_url=sim.base_url, api_key="sk-bench", max_retries=0, timeout=60)
            for turn in sorted(schedule, key=lambda t: (t.at, t.task, t.session)):
                clock.now = turn.at
                exporter.mark(turn.at)
                messages = transcripts.setdefault((turn.task, turn.session), [])
                extra: dict[str, Any] = {}
                if turn.task == "chat":
                    messages.append({"role": "user", "content": _question(turn)})
                else:
                    extra["tools"] = TOOLS
                    if not messages:
                        messages.append({"role": "user", "content": "Explain how requests are handled here."})
                    else:
                        previous = messages[-1]["content"]
                        calls = [block for block in previous if getattr(block, "type", None) == "tool_use"]
                        if turn.parallel > len(calls):  # the model asked for more tools at once
                            calls += [anthropic.types.ToolUseBlock(
                                type="tool_use", id=f"toolu_{turn.session:08d}{turn.number:06d}{i:04d}",
                                name="read_file", input={"path": f"src/{i}.py"}) for i in range(len(calls),
                                                                                                 turn.parallel)]
                            said = [block for block in previous if getattr(block, "type", None) != "tool_use"]
                            messages[-1] = {"role": "assistant", "content": [*said, *calls]}
                        messages.append({"role": "user", "content": _results(turn, calls)})
                with otel_claude.task(turn.task):
                    reply = client.messages.create(model=MODEL, max_tokens=400, system=SYSTEMS[turn.task],
                                                   messages=messages, **extra)
                messages.append({"role": "assistant", "content": reply.content})
    finally:
        otel_claude.uninstrument()
        provider.shutdown()


def with_conversation_ttl(policy: Policy, ttl: str) -> Policy:
    """The same policy with every rule's conversation TTL set (a 5m shared prefix moves to 1h beside a 1h one)."""
    rules = []
    for rule in policy.rules:
        cache = rule.cache or CacheAction(ttl="none")
        prefix_ttl = "1h" if ttl == "1h" and cache.ttl == "5m" else cache.ttl
        rules.append(replace(rule, cache=replace(cache, ttl=prefix_ttl, conversation_ttl=ttl)))
    return replace(policy, rules=tuple(rules))


def tuned(spans: Path, out: Path) -> Policy:
    assert tune([str(spans), "-o", str(out), "--no-progress"]) == 0
    return load_policy_text(out.read_text(), str(out))


def outcome(spans: Path, task: str) -> tuple[float, float | None]:
    """(cost per call, history hit rate) of a task in a run's spans."""
    dataset, _ = load_dataset([str(spans)])
    model = next(m for m in dataset.models if m.task == task)
    stats = dataset.conversation(task)
    rate = stats.history_read / stats.history_tokens if stats is not None and stats.history_tokens else None
    return model.cost_per_call, rate


def conversation_rule(policy: Policy, task: str) -> tuple[str, dict[str, Any]]:
    rule = next((r for r in policy.rules if r.task == task), None)
    if rule is None:
        return "none", {}
    ttl = rule.cache.conversation_ttl if rule.cache is not None else "none"
    evidence = rule.evidence.get("conversation", {})
    return ttl, evidence if isinstance(evidence, dict) else {}


def schedule_of(calls: int, seed: int) -> list[Turn]:
    """About `calls` calls, half chat turns, half agent rounds."""
    chat_sessions = max(1, calls // 2 // 6)
    agent_sessions = max(1, calls // 2 // 8)
    return chats(chat_sessions, (3, 10), 120.0, seed) + agents(agent_sessions, (4, 12), 4.0, seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="calls per round")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-conversation-"))
    started = time.perf_counter()
    rounds = [schedule_of(args.calls, args.seed + i) for i in range(3)]
    run(rounds[0], work / "round1.jsonl", None)
    first = tuned(work / "round1.jsonl", work / "policy1.yaml")
    run(rounds[1], work / "round2.jsonl", first)
    final = tuned(work / "round2.jsonl", work / "policy2.yaml")
    runs = {"tuned": final, **{ttl: with_conversation_ttl(final, ttl) for ttl in TTLS}}
    for name, policy in runs.items():
        run(rounds[2], work / f"eval-{name}.jsonl", policy)
    print(f"anthropic {anthropic.__version__}; {len(rounds[0])}, {len(rounds[1])} and {len(rounds[2])} calls per "
          f"round; {time.perf_counter() - started:.0f} s; files in {work}")
    for task in ("chat", "agent"):
        costs = {name: outcome(work / f"eval-{name}.jsonl", task) for name in runs}
        ttl1, _ = conversation_rule(first, task)
        ttl, evidence = conversation_rule(final, task)
        best = min(TTLS, key=lambda t: costs[t][0])
        ratio = costs["tuned"][0] / costs[best][0]
        predicted = evidence.get("predicted_history_hit_rate", {}).get(ttl)
        realised = costs["tuned"][1]
        print(f"\n{task}: round 1 chose {ttl1}, round 2 (re-tuned on its own traffic) {ttl}; "
              f"continuing share {evidence.get('continuing_share')}, gaps {evidence.get('gap_seconds')}")
        print("  cost per call: " + ", ".join(f"{name} ${costs[name][0]:.6f}" for name in runs))
        print(f"  tuned / cheapest ({best}): {ratio:.3f} (target <= 1.05)")
        if predicted is not None and realised is not None:
            print(f"  history hit rate: predicted {predicted:.3f}, reached {realised:.3f}, "
                  f"difference {abs(predicted - realised) * 100:.1f} points (target <= 5)")
        baseline, _ = outcome(work / "round1.jsonl", task)
        print(f"  against round 1 without a policy (${baseline:.6f}): {costs['tuned'][0] / baseline:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
