"""A mixed set of call and feedback spans whose tune gives a policy with rules: the input of the reader parity tests."""

from __future__ import annotations

import random

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
