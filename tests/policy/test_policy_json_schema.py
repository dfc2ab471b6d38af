"""The published JSON Schema (for editors) says what the parser says: the same keys at every level, and the same
verdict on every valid and invalid value tried here. Checked with the reference validator (`jsonschema`)."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_claude.policy import PolicyError, dump_policy, json_schema, parse_policy

jsonschema = pytest.importorskip("jsonschema")

DOCS = Path(__file__).resolve().parents[2] / "docs" / "policy.md"
SCHEMA = json_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def docs_example() -> dict[str, Any]:
    """The annotated example at the top of docs/policy.md, which shows every key."""
    block = re.search(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert block is not None
    data: dict[str, Any] = yaml.safe_load(block.group(1))
    return data


def resolved(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = SCHEMA
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def object_locations(schema: dict[str, Any], data: Any, path: tuple[Any, ...] = ()) -> Iterator[
        tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]]:
    """Every closed object of the schema with where the example has it: (path, schema, example value)."""
    schema = resolved(schema)
    if isinstance(data, list):
        for i, item in enumerate(data):
            yield from object_locations(schema.get("items", {}), item, (*path, i))
    elif isinstance(data, dict) and schema.get("additionalProperties") is False:
        yield path, schema, data
        for key, value in data.items():
            yield from object_locations(schema["properties"][key], value, (*path, key))


def at(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def parser_accepts(data: Any) -> bool:
    try:
        parse_policy(data, "policy.yaml")
    except PolicyError:
        return False
    return True


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_docs_example_uses_every_key_and_both_accept_it() -> None:
    example = docs_example()
    assert parser_accepts(example)
    assert VALIDATOR.is_valid(example), [e.message for e in VALIDATOR.iter_errors(example)]
    locations = list(object_locations(SCHEMA, example))
    assert len(locations) >= 9  # top, rule, when, cache, conversation, explore, evaluate, judge, limit
    for path, schema, value in locations:
        assert set(value) == set(schema["properties"]), f"docs example at {path} does not show every key"


def test_schema_keys_are_the_parsers_keys_at_every_level() -> None:
    example = docs_example()
    for path, schema, _ in object_locations(SCHEMA, example):
        broken = copy.deepcopy(example)
        at(broken, path)["zz_unknown"] = 1
        assert not VALIDATOR.is_valid(broken), path
        with pytest.raises(PolicyError) as raised:
            parse_policy(broken, "policy.yaml")
        line = next(line for line in str(raised.value).splitlines() if "zz_unknown" in line)
        allowed = re.search(r"\(allowed: ([^)]*)\)", line)
        assert allowed is not None, line
        assert set(allowed.group(1).split(", ")) == set(schema["properties"]), path


def test_what_the_tuner_writes_validates() -> None:
    dumped = yaml.safe_load(dump_policy(parse_policy(docs_example(), "policy.yaml")))
    assert VALIDATOR.is_valid(dumped), [e.message for e in VALIDATOR.iter_errors(dumped)]


RULE = ("rules", 0)
LIMIT = ("limits", 0)
# (where, key, value): set `key` to `value` at `where` in the docs example (value None: delete the key).
INVALID = [
    ((), "schema_version", 2),
    ((), "version", "  "),
    ((), "mode", "enforcing"),
    ((), "rollout_percent", 101),
    ((), "rules", None),
    ((), "rules", {"task": "x"}),
    (RULE, "task", ""),
    (RULE, "max_tokens", 0),
    (RULE, "max_tokens", "256"),
    (RULE, "max_tokens_mode", "min"),
    ((*RULE, "when"), "input_tokens_min", -1),
    ((*RULE, "when"), "models", []),
    ((*RULE, "cache"), "ttl", "10m"),
    ((*RULE, "cache"), "targets", []),
    ((*RULE, "cache"), "targets", ["tools", "tools"]),
    ((*RULE, "cache"), "targets", ["messages"]),
    ((*RULE, "cache", "conversation"), "ttl", None),
    ((*RULE, "explore"), "share", 0.3),
    ((*RULE, "explore"), "model", None),
    ((*RULE, "evaluate"), "share", 0),
    ((*RULE, "evaluate"), "budget", 1.5),
    ((*RULE, "evaluate", "judge"), "rubric", ""),
    ((*RULE, "evaluate", "judge"), "model", None),
    (LIMIT, "max_wait", 601),
    (LIMIT, "on_timeout", "wait"),
    (LIMIT, "concurrency", 0),
    (LIMIT, "adaptive", "yes"),
    (LIMIT, "models", "claude-sonnet-4-6"),
]
VALID = [
    ((), "mode", "shadow"),
    ((), "rollout_percent", 0),
    ((), "limits", None),
    ((), "metadata", None),
    (RULE, "max_tokens_mode", "set"),
    ((*RULE, "evaluate"), "budget", 1),
    ((*RULE, "evaluate"), "judge", None),
    (LIMIT, "max_wait", 0),
    (LIMIT, "on_timeout", "fail"),
]


def mutated(where: tuple[Any, ...], key: str, value: Any) -> dict[str, Any]:
    data = docs_example()
    if value is None:
        del at(data, where)[key]
    else:
        at(data, where)[key] = value
    return data


@pytest.mark.parametrize(("where", "key", "value"), INVALID, ids=lambda v: repr(v))
def test_both_reject(where: tuple[Any, ...], key: str, value: Any) -> None:
    data = mutated(where, key, value)
    assert not parser_accepts(data)
    assert not VALIDATOR.is_valid(data)


@pytest.mark.parametrize(("where", "key", "value"), VALID, ids=lambda v: repr(v))
def test_both_accept(where: tuple[Any, ...], key: str, value: Any) -> None:
    data = mutated(where, key, value)
    assert parser_accepts(data)
    assert VALIDATOR.is_valid(data), [e.message for e in VALIDATOR.iter_errors(data)]


@pytest.mark.parametrize("cache", [
    {},  # neither the prefix nor the conversation
    {"ttl": "5m", "conversation": {"ttl": "1h"}},  # a 1h breakpoint after a 5m one
])
def test_both_reject_cache_combinations(cache: dict[str, Any]) -> None:
    data = mutated(RULE, "cache", cache)
    assert not parser_accepts(data)
    assert not VALIDATOR.is_valid(data)


@pytest.mark.parametrize("cache", [{"conversation": {"ttl": "5m"}}, {"ttl": "1h", "conversation": {"ttl": "5m"}}])
def test_both_accept_cache_combinations(cache: dict[str, Any]) -> None:
    data = mutated(RULE, "cache", cache)
    assert parser_accepts(data)
    assert VALIDATOR.is_valid(data)


@pytest.mark.parametrize(("limit", "valid"), [
    ({}, True),  # adaptive by default: learns the limits from the headers
    ({"adaptive": True}, True),
    ({"adaptive": False}, False),  # sets no limit at all
    ({"adaptive": False, "requests_per_minute": 60}, True),
])
def test_limit_must_set_something(limit: dict[str, Any], valid: bool) -> None:
    data = mutated((), "limits", [limit])
    assert parser_accepts(data) is valid
    assert VALIDATOR.is_valid(data) is valid
