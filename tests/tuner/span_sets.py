"""Span sets for the tuner's tests: a mixed set whose tune gives a policy with rules (the input of the reader parity
tests), and two days of traffic whose report has a known content (the report tests)."""

from __future__ import annotations

import random
from pathlib import Path

from otel_claude import semconv as sc
from tuner import synthetic as syn

T0 = 1_763_900_000_000_000_000


def mixed_calls(calls: int = 600, mean_gap_s: float = 400, seed: int = 3) -> list[syn.Span]:
    """Two tasks on two models with feedback, errors, cancellations (new and old style), routed and explored calls,
    cache writes under both names, cache reads, streamed and non-streamed calls. Start times are whole microseconds,
    so formats that keep microseconds (Jaeger) hold the same spans."""
    rng = random.Random(seed)
    spans = []
    t = T0
    for i in range(calls):
        t += int(rng.expovariate(1 / mean_gap_s) * 1e6) * 1000
        model = "claude-sonnet-4-6" if i % 3 else "claude-haiku-4-5"
        task = "classify" if i % 2 else "summarize"
        rid = f"msg_{i}"
        span = syn.call(
            start_ns=t,
            model=model,
            task=task,
            output_tokens=int(rng.lognormvariate(5, 0.6)),
            max_tokens=600,
            input_tokens=rng.randint(3000, 9000),
            response_id=rid,
            prefix=f"fp-{task}-{i % 2 + (i % 5 == 0)}",
            prefix_tokens=4500,
            cache_write=400 if i % 11 == 0 else 0,
            cache_read=4500 if i % 3 == 1 else 0,
            ttft=round(rng.uniform(0.2, 1.5), 3) if i % 4 != 3 else None,  # a quarter not streamed
            error="overloaded_error" if i % 97 == 0 else None,
            exploration=i % 7 == 0,
            requested_max_tokens=4096 if i % 5 else None,
            requested_model="claude-sonnet-4-6" if i % 6 == 0 else None,
            cancelled=i % 53 == 0,
        )
        if i % 89 == 0:  # recorded before otel_claude.cancelled existed
            span.attributes[sc.ERROR_TYPE] = "CancelledError"
        if i % 22 == 11 and sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS in span.attributes:
            # gen_ai_latest_experimental: only the newer cache-write name
            span.attributes[sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] = span.attributes.pop(
                sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
            )
        spans.append(span)
        if i % 4:
            spans.append(syn.feedback(start_ns=t + 1000, response_id=rid, score=float(rng.random() < 0.85)))
    spans.append(syn.feedback(start_ns=T0 + 5000, response_id="msg_nowhere", score=1.0))
    return spans


DAY_NS = 86_400 * 10**9
SONNET, HAIKU = "claude-sonnet-4-6", "claude-haiku-4-5"


def _spread(n: int, days: float = 2.0) -> list[int]:
    """n start times evenly over `days` (the window is exactly that long: first to last call)."""
    step = int(days * DAY_NS) // (n - 1)
    return [T0 + i * step for i in range(n)]


def report_traffic(path: Path) -> Path:
    """Three tasks over exactly two days.

    classify (1,200 calls): a 5,000-token shared prompt; half the calls streamed (those reading the cache see their
    first token after 0.2 s, the others after 0.8 s), half not (3 s each). A Haiku shadow copy of every call agreed
    with Sonnet 97% of the time: a proven move.
    triage (600 calls, half scored 0.8): Haiku answered 11 explored calls, all scored 1.0: far too few to judge.
    draft (300 calls): never streamed.
    """
    spans = []
    for i, t in enumerate(_spread(1200)):
        rid = f"c{i}"
        streamed = i % 2 == 0
        cached = i % 4 == 0
        common = dict(task="classify", input_tokens=5400, max_tokens=1024, prefix="5e7a0c11", prefix_tokens=5000)
        spans.append(syn.call(start_ns=t, model=SONNET, output_tokens=10 + i % 40, response_id=rid,
                              cache_read=5000 if cached else 0, ttft=(0.2 if cached else 0.8) if streamed else None,
                              duration_s=3.0 if not streamed else 1.0, **common))
        spans.append(syn.call(start_ns=t + 1, model=HAIKU, output_tokens=10 + i % 40, response_id=f"{rid}-shadow",
                              role="shadow", **common))
        value = (1.0 if i % 200 < 3 else -1.0) if i % 100 < 3 else 0.0
        spans.append(syn.verdict(start_ns=t + 2, response_id=rid, task="classify", value=value, incumbent=SONNET,
                                 candidate=HAIKU))
    for i, t in enumerate(_spread(600)):
        rid = f"t{i}"
        explored = i % 50 == 7 and i < 550  # 11 calls
        spans.append(syn.call(start_ns=t, model=HAIKU if explored else SONNET, task="triage", output_tokens=80,
                              input_tokens=900, max_tokens=512, response_id=rid, exploration=explored,
                              ttft=0.5))
        if explored:
            spans.append(syn.feedback(start_ns=t + 5, response_id=rid, score=1.0))
        elif i % 2:
            spans.append(syn.feedback(start_ns=t + 5, response_id=rid, score=0.8))
    for i, t in enumerate(_spread(300)):
        spans.append(syn.call(start_ns=t + 7, model=SONNET, task="draft", output_tokens=300, input_tokens=2000,
                              max_tokens=1024, response_id=f"d{i}", duration_s=2.0))
    return syn.write_otlp(path, spans)
