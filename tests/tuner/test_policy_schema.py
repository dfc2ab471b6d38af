"""The policy schema v1: strict validation with precise messages, safe loading, deterministic dumps."""

from __future__ import annotations

import pytest

from otel_claude.policy import (
    CacheAction,
    Conditions,
    Explore,
    Policy,
    PolicyError,
    Rule,
    dump_policy,
    load_policy_text,
    parse_policy,
)

DOC_EXAMPLE = """
schema_version: 1
version: "20261123-3f9a1c2e"
mode: enforce
rollout_percent: 100
metadata:
  tuner_version: "0.1.0"
  span_count: 12345
  data_window: {start: "2026-11-20T00:00:00Z", end: "2026-11-23T00:00:00Z"}
  options: {truncation_target: 0.01, quality_margin: 0.02}
rules:
  - task: classify
    when:
      models: [claude-sonnet-4-6]
      input_tokens_min: 0
      input_tokens_max: 4000
    model: claude-haiku-4-5
    max_tokens: 256
    max_tokens_mode: cap
    cache:
      ttl: 5m
      targets: [tools, system]
      conversation:
        ttl: 5m
    explore:
      model: claude-haiku-4-5
      share: 0.05
    evidence: {}
  - task: classify
    max_tokens: 512
  - task: "*"
    model: claude-sonnet-4-5-20250929
"""


def _base(**rule: object) -> dict[str, object]:
    return {"schema_version": 1, "version": "v1", "rules": [{"task": "other"}, {"task": "classify", **rule}]}


def test_documented_example_parses_to_the_model() -> None:
    policy = load_policy_text(DOC_EXAMPLE, "policy.yaml")
    first = policy.rules[0]
    assert first == Rule(
        task="classify",
        id="classify#0",
        when=Conditions(models=("claude-sonnet-4-6",), input_tokens_min=0, input_tokens_max=4000),
        model="claude-haiku-4-5",
        max_tokens=256,
        max_tokens_mode="cap",
        cache=CacheAction(ttl="5m", targets=("tools", "system"), conversation_ttl="5m"),
        explore=Explore(model="claude-haiku-4-5", share=0.05),
        evidence={},
    )
    assert [r.id for r in policy.rules] == ["classify#0", "classify#1", "*#0"]
    assert policy.metadata["span_count"] == 12345
    assert policy.mode == "enforce" and policy.rollout_percent == 100


def test_defaults_apply_when_optional_fields_are_absent() -> None:
    policy = parse_policy({"schema_version": 1, "version": "x", "rules": [{"task": "a", "cache": {"ttl": "1h"}}]}, "p")
    assert policy.mode == "enforce" and policy.rollout_percent == 100 and policy.metadata == {}
    assert policy.rules[0].cache == CacheAction(ttl="1h", targets=("tools", "system"))
    assert policy.rules[0].max_tokens_mode == "cap"
    only_conversation = {"schema_version": 1, "version": "x",
                         "rules": [{"task": "a", "cache": {"conversation": {"ttl": "1h"}}}]}
    assert parse_policy(only_conversation, "p").rules[0].cache == CacheAction(ttl="none", conversation_ttl="1h")


@pytest.mark.parametrize(
    ("rule", "field", "fragment"),
    [
        ({"max_tokens": -5}, "max_tokens", "integer >= 1"),
        ({"max_tokens": True}, "max_tokens", "integer >= 1"),
        ({"max_tokens": 2.5}, "max_tokens", "integer >= 1"),
        ({"model": "gpt-4o"}, "model", "unknown model 'gpt-4o'"),
        ({"max_tokens_mode": "clip"}, "max_tokens_mode", "cap, set"),
        ({"cache": {"ttl": "10m"}}, "cache.ttl", "5m, 1h, none"),
        ({"cache": {"targets": ["tools"]}}, "cache.ttl", "is required"),
        ({"cache": {"ttl": "5m", "targets": ["messages"]}}, "cache.targets[0]", "tools, system"),
        ({"cache": {"ttl": "5m", "targets": []}}, "cache.targets", "non-empty"),
        ({"cache": {"ttl": "5m", "every": 1}}, "cache.every", "unknown key"),
        ({"cache": {"conversation": "5m"}}, "cache.conversation", "must be a mapping"),
        ({"cache": {"conversation": {}}}, "cache.conversation.ttl", "is required"),
        ({"cache": {"conversation": {"ttl": "2h"}}}, "cache.conversation.ttl", "5m, 1h, none"),
        ({"cache": {"conversation": {"ttl": "5m", "min_turn": 1}}}, "cache.conversation.min_turn", "unknown key"),
        ({"cache": {"ttl": "5m", "conversation": {"ttl": "1h"}}}, "cache.conversation.ttl", "cannot be 1h"),
        ({"explore": {"model": "claude-haiku-4-5", "share": 0.25}}, "explore.share", "(0, 0.2]"),
        ({"explore": {"model": "claude-haiku-4-5", "share": 0}}, "explore.share", "(0, 0.2]"),
        ({"explore": {"share": 0.1}}, "explore.model", "is required"),
        ({"explore": {"model": "claude-nope", "share": 0.1}}, "explore.model", "unknown model"),
        ({"when": {"input_tokens_min": 10, "input_tokens_max": 10}}, "when.input_tokens_max", "greater than"),
        ({"when": {"models": []}}, "when.models", "non-empty list"),
        ({"when": {"models": ["claude-x"]}}, "when.models[0]", "unknown model"),
        ({"when": {"size": 3}}, "when.size", "unknown key"),
        ({"evidence": {"at": object()}}, "evidence.at", "plain data"),
        ({"evidence": {"n": float("nan")}}, "evidence.n", "finite"),
        ({"priority": 1}, "priority", "unknown key"),
    ],
)
def test_bad_rule_fields_name_source_rule_and_field(rule: dict[str, object], field: str, fragment: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(_base(**rule), "conf/policy.yaml")
    message = str(info.value)
    assert message.startswith("conf/policy.yaml: rules[1] (task 'classify'): ")
    assert f"field '{field}'" in message
    assert fragment in message


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ([1, 2], "must be a YAML mapping, got list"),
        ({"version": "v"}, "field 'schema_version': is required"),
        ({"schema_version": 2, "version": "v"}, "field 'schema_version': must be 1"),
        ({"schema_version": True, "version": "v"}, "field 'schema_version': must be 1"),
        ({"schema_version": 1, "version": ""}, "field 'version'"),
        ({"schema_version": 1, "version": "v", "mode": "dry"}, "field 'mode'"),
        ({"schema_version": 1, "version": "v", "rollout_percent": 101}, "field 'rollout_percent'"),
        ({"schema_version": 1, "version": "v", "rules": {"task": "a"}}, "field 'rules': must be a list"),
        ({"schema_version": 1, "version": "v", "rules": ["a"]}, "rules[0]: field 'rules': each rule must be a mapping"),
        ({"schema_version": 1, "version": "v", "rules": [{"model": "claude-haiku-4-5"}]}, "rules[0]: field 'task'"),
        ({"schema_version": 1, "version": "v", "extra": 1}, "field 'extra': unknown key"),
        ({"schema_version": 1, "version": "v"}, "field 'rules': is required"),
    ],
)
def test_bad_top_level_is_rejected(data: object, fragment: str) -> None:
    with pytest.raises(PolicyError, match=r"^p\.yaml: ") as info:
        parse_policy(data, "p.yaml")
    assert fragment in str(info.value)


def test_yaml_that_is_not_a_mapping_or_not_yaml() -> None:
    with pytest.raises(PolicyError, match="a policy must be a YAML mapping, got str"):
        load_policy_text("just a string\n", "p.yaml")
    with pytest.raises(PolicyError, match=r"p\.yaml: not valid YAML"):
        load_policy_text("rules: [\n", "p.yaml")
    with pytest.raises(PolicyError, match="duplicate key 'version'"):
        load_policy_text("schema_version: 1\nversion: a\nversion: b\n", "p.yaml")


def test_oversized_input_is_rejected_before_parsing() -> None:
    text = "schema_version: 1\nversion: v\nrules: []\nmetadata: {pad: '" + "x" * 2000 + "'}\n"
    assert load_policy_text(text, "p", max_bytes=4000).version == "v"
    with pytest.raises(PolicyError, match="larger than the limit of 1000"):
        load_policy_text(text, "p", max_bytes=1000)
    # Multi-byte characters count as bytes, not characters.
    with pytest.raises(PolicyError, match="larger than the limit"):
        load_policy_text("a: '" + "é" * 600 + "'", "p", max_bytes=1000)


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        prev = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([prev] * 10)}]")
    bomb = "\n".join(lines) + "\n"
    assert len(bomb) < 1000  # tiny text, 10**9 nodes once expanded
    with pytest.raises(PolicyError, match="alias bomb"):
        load_policy_text(bomb, "bomb.yaml")


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(PolicyError, match="nests deeper"):
        load_policy_text("a: " + "[" * 100 + "]" * 100, "deep.yaml")


def test_small_aliases_still_work() -> None:
    text = "schema_version: 1\nversion: v\nmetadata: {a: &w {x: 1}, b: *w}\nrules: []\n"
    assert load_policy_text(text, "p").metadata == {"a": {"x": 1}, "b": {"x": 1}}


def test_dump_round_trips_and_is_deterministic() -> None:
    policy = load_policy_text(DOC_EXAMPLE, "policy.yaml")
    text = dump_policy(policy)
    again = load_policy_text(text, "dumped")
    assert again == policy
    assert dump_policy(again) == text
    assert "&" not in text and "*" not in text.replace("task: '*'", "")


def test_dump_sorts_free_form_maps_and_never_aliases() -> None:
    shared = {"b": 1, "a": [1.5, "x"]}
    policy = Policy(
        version="v",
        metadata={"z": 1, "a": shared},
        rules=(Rule(task="t", evidence={"y": shared, "x": shared}),),
    )
    text = dump_policy(policy)
    assert text.index("a:") < text.index("z:")
    assert "&id" not in text and "*id" not in text
    assert load_policy_text(text, "d").rules[0].evidence == {"x": shared, "y": shared}


def test_dump_refuses_invalid_policy() -> None:
    with pytest.raises(PolicyError, match=r"explore\.share"):
        dump_policy(Policy(version="v", rules=(Rule(task="t", explore=Explore("claude-haiku-4-5", 0.5)),)))
