"""The policy's `limits` block: strict validation with precise messages, canonical models, deterministic dumps."""

from __future__ import annotations

import pytest

from otel_claude.policy import Limit, PolicyError, dump_policy, load_policy_text, parse_policy

DOC_EXAMPLE = """
schema_version: 1
version: "20261128-limits"
rules: []
limits:
  - models: [claude-sonnet-4-6, claude-sonnet-4-5-20250929, claude-sonnet-4-5]
    concurrency: 12
    requests_per_minute: 1950
    input_tokens_per_minute: 1900000
    output_tokens_per_minute: 390000
    adaptive: true
    max_wait: 30
    on_timeout: fail
    evidence: {calls: 1000}
  - task: nightly-batch
    adaptive: true
"""


def _policy(*limits: dict[str, object]) -> dict[str, object]:
    return {"schema_version": 1, "version": "v", "rules": [], "limits": list(limits)}


def test_documented_example_parses_to_the_model() -> None:
    policy = load_policy_text(DOC_EXAMPLE, "policy.yaml")
    first, second = policy.limits
    # An alias and its dated snapshot share one account limit: the list is canonical, sorted and deduplicated.
    assert first == Limit(task="*", models=("claude-sonnet-4-5", "claude-sonnet-4-6"),
                          id="*/claude-sonnet-4-5+claude-sonnet-4-6", concurrency=12, requests_per_minute=1950,
                          input_tokens_per_minute=1900000, output_tokens_per_minute=390000, adaptive=True,
                          max_wait=30.0, on_timeout="fail", evidence={"calls": 1000})
    assert second == Limit(task="nightly-batch", id="nightly-batch/*")
    assert second.max_wait == 60.0 and second.on_timeout == "proceed" and second.adaptive


def test_no_limits_is_the_default() -> None:
    assert parse_policy({"schema_version": 1, "version": "v", "rules": []}, "p").limits == ()


@pytest.mark.parametrize(
    ("limit", "field", "fragment"),
    [
        ({"concurrency": 0}, "concurrency", "integer >= 1"),
        ({"requests_per_minute": 2.5}, "requests_per_minute", "integer >= 1"),
        ({"output_tokens_per_minute": True}, "output_tokens_per_minute", "integer >= 1"),
        ({"models": []}, "models", "non-empty list"),
        ({"models": ["gpt-4"]}, "models[0]", "unknown model"),
        ({"adaptive": "yes"}, "adaptive", "true or false"),
        ({"adaptive": False}, "adaptive", "sets no limit"),
        ({"concurrency": 2, "max_wait": -1}, "max_wait", "number of seconds"),
        ({"concurrency": 2, "max_wait": 3600}, "max_wait", "number of seconds"),
        ({"concurrency": 2, "on_timeout": "queue"}, "on_timeout", "proceed, fail"),
        ({"concurrency": 2, "task": ""}, "task", "non-empty string"),
        ({"concurrency": 2, "burst": 5}, "burst", "unknown key"),
    ],
)
def test_bad_limit_fields_name_the_entry_and_field(limit: dict[str, object], field: str, fragment: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(_policy({"task": "other", "concurrency": 1}, limit), "policy.yaml")
    message = str(caught.value)
    assert message.startswith("policy.yaml: limits[1]: ")
    assert f"field '{field}'" in message and fragment in message


def test_limits_must_be_a_list_of_mappings() -> None:
    with pytest.raises(PolicyError, match="field 'limits': must be a list"):
        parse_policy({"schema_version": 1, "version": "v", "rules": [], "limits": {"concurrency": 1}}, "p")
    with pytest.raises(PolicyError, match=r"limits\[0\]: field 'limits': each limit must be a mapping"):
        parse_policy(_policy(5), "p")  # type: ignore[arg-type]


def test_a_repeated_selector_is_rejected() -> None:
    # The same models spelled differently are the same selector: the second entry could never apply.
    with pytest.raises(PolicyError, match=r"limits\[1\]: field 'models': repeats the selector"):
        parse_policy(_policy({"models": ["claude-sonnet-4-5"], "concurrency": 1},
                             {"models": ["claude-sonnet-4-5-20250929"], "concurrency": 2}), "p")


def test_dump_round_trips_limits() -> None:
    policy = load_policy_text(DOC_EXAMPLE, "policy.yaml")
    text = dump_policy(policy)
    assert load_policy_text(text, "again") == policy
    assert dump_policy(load_policy_text(text, "again")) == text
    assert "limits:" in text and "on_timeout: fail" in text


def test_a_policy_without_limits_dumps_as_before() -> None:
    text = dump_policy(parse_policy({"schema_version": 1, "version": "v", "rules": []}, "p"))
    assert "limits" not in text
