"""Conversation caching in the tuner: statistics read from conversation keys in OTLP files, and the TTL decision on
constructed conversations whose right answer is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from otel_claude.catalog import resolve
from otel_claude.policy import load_policy_text
from tuner import synthetic
from tuner._conversation import conversation_cost, decide_conversation_cache
from tuner._ingest import load_dataset
from tuner.cli import main as tune

SONNET, HAIKU = "claude-sonnet-4-6", "claude-haiku-4-5"  # cache minimums 1,024 and 4,096 tokens
START = 1_800_000_000 * 10**9


def _key(conversation: int, turn: int) -> str:
    return f"{conversation + 1:08x}{turn:08x}"  # never all zeros: that reads as no key


def conversations(count: int, turns: int, think: float | list[float], *, task: str = "chat", model: str = SONNET,
                  prefix: int = 300, step: int = 600, first_turn: int = 0, apart: float = 7200.0,
                  cache_read: bool = False) -> list[synthetic.Span]:
    """`count` conversations of `turns` turns, each turn `step` tokens more than the last, `think` seconds apart
    (one value, or one per conversation); conversations start `apart` seconds from each other, so none shares a
    cache entry with another. `first_turn` > 0: the earlier turns lie before the data. `cache_read`: the calls
    already read their history from the cache (a policy caching conversations is in force)."""
    spans = []
    for c in range(count):
        gap = think[c] if isinstance(think, list) else think
        for turn in range(first_turn, first_turn + turns):
            start = START + int((c * apart + (turn - first_turn) * gap) * 1e9)
            total = prefix + (turn + 1) * step
            history = prefix + turn * step
            span = synthetic.call(start_ns=start, model=model, output_tokens=150, input_tokens=total, task=task,
                                  prefix=f"p{c}", prefix_tokens=prefix,
                                  cache_read=history if cache_read and turn else 0)
            span.attributes["otel_claude.conversation.fingerprint"] = _key(c, turn)
            span.attributes["otel_claude.conversation.turn"] = turn
            if turn:
                span.attributes["otel_claude.conversation.parent_fingerprint"] = _key(c, turn - 1)
                span.attributes["otel_claude.conversation.history_tokens_estimate"] = history
            spans.append(span)
    return spans


def _stats(tmp_path: Path, spans: list[synthetic.Span], task: str = "chat"):  # type: ignore[no-untyped-def]
    dataset, issues = load_dataset([str(synthetic.write_otlp(tmp_path / "spans.jsonl", spans))])
    assert issues.total == 0, issues.examples
    return dataset.conversation(task)


def test_statistics_link_each_turn_to_the_previous_one(tmp_path: Path) -> None:
    stats = _stats(tmp_path, conversations(10, 5, think=90.0) + conversations(4, 3, 30.0, first_turn=6,
                                                                                apart=10_000))
    assert stats.calls == 10 * 5 + 4 * 3
    assert stats.continuing == 10 * 4 + 4 * 3
    assert stats.linked == 10 * 4 + 4 * 2  # the first call of a conversation that began before the data: unknown
    linked = stats.gap[~np.isnan(stats.gap)]
    assert np.allclose(np.sort(linked), np.sort([90.0] * 40 + [30.0] * 8))
    continuing = stats.turn >= 1
    # What a turn can reuse is what the turn before it sent.
    assert np.array_equal(stats.reusable[continuing], 300 + stats.turn[continuing] * 600)
    assert np.array_equal(stats.total, 300 + (stats.turn + 1) * 600)
    assert stats.history_read == 0 and stats.history_tokens == int(np.sum(stats.turn[continuing] * 600))


def test_a_read_refreshes_what_the_next_branch_measures_from(tmp_path: Path) -> None:
    """Two replies to the same history (a regenerated answer): the second one's gap counts from the first one."""
    spans = conversations(1, 2, think=100.0)
    branch = synthetic.call(start_ns=spans[1].start_ns + int(50e9), model=SONNET, output_tokens=100,
                            input_tokens=1500, task="chat")
    branch.attributes.update({"otel_claude.conversation.fingerprint": "ffff0000ffff0000",
                              "otel_claude.conversation.turn": 1,
                              "otel_claude.conversation.parent_fingerprint": _key(0, 0),
                              "otel_claude.conversation.history_tokens_estimate": 900})
    stats = _stats(tmp_path, [*spans, branch])
    assert sorted(stats.gap[~np.isnan(stats.gap)].tolist()) == [50.0, 100.0]


@pytest.mark.parametrize(("think", "expected"), [(60.0, "5m"), (1200.0, "1h"), (3 * 3600.0, "none")])
def test_think_time_decides_the_ttl(tmp_path: Path, think: float, expected: str) -> None:
    stats = _stats(tmp_path, conversations(40, 6, think))
    decision = decide_conversation_cache(stats, SONNET)
    assert decision.ttl == expected, decision.reason
    info = resolve(SONNET)
    assert info is not None
    costs = {ttl: conversation_cost(stats, info, ttl) for ttl in ("none", "5m", "1h")}
    assert min(costs, key=costs.__getitem__) == expected
    if expected != "none":
        assert decision.saving_per_call == pytest.approx(costs["none"] - costs[expected], rel=1e-9)
        low, high = decision.evidence["saving_per_call_ci95"][expected]  # type: ignore[index]
        assert 0 < low <= decision.saving_per_call <= high


def test_expected_cost_is_the_cache_arithmetic(tmp_path: Path) -> None:
    """Every turn hits at 5m: a continuing call pays R*read + (T - R)*write; a first turn writes it all."""
    stats = _stats(tmp_path, conversations(3, 4, think=60.0, prefix=1200))
    info = resolve(SONNET)
    assert info is not None
    per_token = info.input * 1e-6
    expected = []
    for turn in range(4):
        total, reusable = 1200 + (turn + 1) * 600, 1200 + turn * 600
        expected.append(total * 1.25 if turn == 0 else reusable * 0.1 + (total - reusable) * 1.25)
    assert conversation_cost(stats, info, "5m") == pytest.approx(np.mean(expected) * per_token)
    without = np.mean([1200 + (t + 1) * 600 for t in range(4)])
    assert conversation_cost(stats, info, "none") == pytest.approx(without * per_token)


def test_a_routed_model_with_a_larger_minimum_caches_less(tmp_path: Path) -> None:
    """Histories of 600-3,000 tokens: cacheable on Sonnet (1,024 minimum), mostly not on Haiku 4.5 (4,096)."""
    stats = _stats(tmp_path, conversations(40, 5, think=60.0, prefix=0))
    sonnet, haiku = decide_conversation_cache(stats, SONNET), decide_conversation_cache(stats, HAIKU)
    assert sonnet.ttl == "5m"
    assert haiku.evidence["reusable_below_minimum_share"] == 1.0
    assert haiku.ttl == "none"


def test_single_turn_traffic_is_not_cached(tmp_path: Path) -> None:
    decision = decide_conversation_cache(_stats(tmp_path, conversations(50, 1, think=60.0)), SONNET)
    assert decision.ttl == "none" and "no call continues" in decision.reason


def test_no_keys_means_no_decision() -> None:
    decision = decide_conversation_cache(None, SONNET)
    assert decision.ttl == "none" and not decision.evidence


def test_a_1h_conversation_moves_a_5m_shared_prefix_to_1h(tmp_path: Path) -> None:
    stats = _stats(tmp_path, conversations(40, 6, think=1200.0, prefix=2000))
    # A prefix many calls share: almost always read, so 1h costs it little more than 5m.
    relatives = {"none": 1.0, "5m": 0.11, "1h": 0.12}
    decision = decide_conversation_cache(stats, SONNET, "5m", relatives)
    assert (decision.prefix_ttl, decision.ttl) == ("1h", "1h")
    assert decision.saving_per_call > 0
    kept = decide_conversation_cache(stats, SONNET, "5m", None)  # no prices for the prefix at 1h: keep 5m
    assert kept.prefix_ttl in (None, "5m") and kept.ttl != "1h"


def test_the_tuner_writes_the_conversation_target_and_reports_it(tmp_path: Path) -> None:
    spans = synthetic.write_otlp(tmp_path / "spans.jsonl", conversations(40, 6, think=1200.0))
    policy_path, report = tmp_path / "policy.yaml", tmp_path / "report.md"
    assert tune([str(spans), "-o", str(policy_path), "--report", str(report), "--no-progress"]) == 0
    rules = load_policy_text(policy_path.read_text(), str(policy_path)).rules
    chat = [rule for rule in rules if rule.task == "chat"]
    assert chat and all(rule.cache is not None and rule.cache.conversation_ttl == "1h" for rule in chat)
    evidence = chat[0].evidence["conversation"]
    assert evidence["continuing_share"] == pytest.approx(5 / 6, abs=1e-3)
    assert evidence["within_1h"]["share"] == 1.0 and evidence["within_5m"]["share"] == 0.0
    text = report.read_text()
    assert "| conversation cache | 1h | 1h conversation caching" in text
    assert "history tokens resent" in text


def test_retuning_traffic_that_already_caches_keeps_the_choice_without_double_counting(tmp_path: Path) -> None:
    stats = _stats(tmp_path, conversations(40, 6, think=60.0, cache_read=True))
    assert stats.history_read == stats.history_tokens
    spans = synthetic.write_otlp(tmp_path / "cached.jsonl", conversations(40, 6, think=60.0, cache_read=True))
    policy_path = tmp_path / "policy.yaml"
    assert tune([str(spans), "-o", str(policy_path), "--no-progress"]) == 0
    rule = next(r for r in load_policy_text(policy_path.read_text(), "p").rules if r.task == "chat")
    assert rule.cache is not None and rule.cache.conversation_ttl == "5m"
    assert "already caching conversations" in rule.evidence["conversation"]["reason"]
    assert rule.evidence["conversation"]["observed_history_hit_rate"] == 1.0


def test_jaeger_input_gives_the_same_statistics(tmp_path: Path) -> None:
    import json

    spans = conversations(6, 4, think=45.0)
    from_otlp = _stats(tmp_path, spans)
    jaeger = tmp_path / "traces.json"
    jaeger.write_text(json.dumps(synthetic.jaeger_document(spans)))
    dataset, issues = load_dataset([str(jaeger)])
    from_jaeger = dataset.conversation("chat")
    assert issues.total == 0 and from_jaeger is not None
    assert (from_jaeger.calls, from_jaeger.continuing, from_jaeger.linked) == (24, 18, 18)
    assert np.array_equal(from_jaeger.gap, from_otlp.gap, equal_nan=True)
    assert np.array_equal(from_jaeger.reusable, from_otlp.reusable)


def test_a_bad_key_is_a_skipped_span_not_a_failure(tmp_path: Path) -> None:
    spans = conversations(2, 3, think=45.0)
    spans[1].attributes["otel_claude.conversation.parent_fingerprint"] = "not-hex!"
    dataset, issues = load_dataset([str(synthetic.write_otlp(tmp_path / "bad.jsonl", spans))])
    assert issues.total == 1 and "not hexadecimal" in issues.examples[0]
    stats = dataset.conversation("chat")
    assert stats is not None and stats.calls == 5
