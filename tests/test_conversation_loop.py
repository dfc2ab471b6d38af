"""End to end for conversation caching, a short run of bench/bench_conversation.py: chats with known think times,
through the real SDK and the simulator's prompt cache -> OTLP JSON spans -> tuner -> policy. The tuned
conversation TTL is checked against every alternative run on the same chats (the best policy, measured), and its
predicted history hit rate against the rate the enforced run reaches."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sklearn")

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_conversation.py"


def load_bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_conversation", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_conversation"] = module  # dataclasses resolve annotations through the module registry
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("think_median", "expected"), [(60.0, "5m"), (1500.0, "1h")])
def test_tuned_conversation_caching_is_the_cheapest_and_predicts_its_hit_rate(
    tmp_path: Path, think_median: float, expected: str
) -> None:
    bench = load_bench()
    chats = bench.chats(36, (6, 6), think_median, seed=7, window=7200.0, sigma=0.6)
    bench.run(chats, tmp_path / "baseline.jsonl", None)
    policy = bench.tuned(tmp_path / "baseline.jsonl", tmp_path / "policy.yaml")
    ttl, evidence = bench.conversation_rule(policy, "chat")
    assert ttl == expected, evidence
    for option in bench.TTLS:
        bench.run(chats, tmp_path / f"{option}.jsonl", bench.with_conversation_ttl(policy, option))
    costs = {option: bench.outcome(tmp_path / f"{option}.jsonl", "chat") for option in bench.TTLS}
    baseline, _ = bench.outcome(tmp_path / "baseline.jsonl", "chat")
    assert costs[expected][0] <= 1.05 * min(cost for cost, _ in costs.values()), costs
    assert costs[expected][0] < 0.8 * baseline
    # The enforced run reads as much of the history as the tuner said it would.
    realised = costs[expected][1]
    assert realised is not None
    assert abs(realised - evidence["predicted_history_hit_rate"][expected]) <= 0.05, (realised, evidence)
