"""The grader chain, the schema subset, the judge's reply parsing and swap rule, and the policy's evaluate block.

Pure functions over typed answers: the end-to-end paths through the SDK are in the other files of this folder.
"""

from __future__ import annotations

import pytest

from otel_claude import Answer, ToolCall, Verdict, register_grader, unregister_grader
from otel_claude._graders import grade
from otel_claude._judge import combine, parse_verdict
from otel_claude._schema import is_valid
from otel_claude.policy import PolicyError, dump_policy, load_policy_text, parse_policy

SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "enum": ["Canberra", "Sydney"]},
                                           "population": {"type": "integer", "minimum": 0}},
          "required": ["city"], "additionalProperties": False}
TOOLS = {"tools": [{"name": "answer", "input_schema": SCHEMA}]}


def _text(text: str) -> Answer:
    return Answer(text=text)


def _tool(**arguments: object) -> Answer:
    return Answer(text="Calling answer.", tool_calls=(ToolCall("answer", arguments),))


def _outcome(request: dict, incumbent: Answer, candidate: Answer, task: str = "t") -> tuple[str, str, float]:
    graded = grade(task, request, incumbent, candidate)
    return graded.grader, graded.label, graded.score


@pytest.mark.parametrize("a, b", [("Canberra.", "  canberra "), ("**Yes**", "yes!"), ("ＡＢＣ", "abc"),
                                  ("two  words", "Two\nwords")])
def test_normalised_equality(a: str, b: str) -> None:
    assert _outcome({}, _text(a), _text(b)) == ("exact", "agree", 0.0)


def test_different_texts_are_unsettled_without_more_to_go_on() -> None:
    assert _outcome({}, _text("Canberra"), _text("Sydney")) == ("exact", "unsettled", 0.0)


def test_tool_calls_by_name_and_parsed_arguments() -> None:
    assert _outcome(TOOLS, _tool(city="Canberra"), _tool(city="Canberra")) == ("tool_call", "agree", 0.0)
    # Both valid but different: the schema cannot tell which is right.
    assert _outcome(TOOLS, _tool(city="Canberra"), _tool(city="Sydney")) == ("json_schema", "unsettled", 0.0)
    assert _outcome(TOOLS, _tool(city="Canberra"), _tool(city="Perth")) == ("json_schema", "candidate_worse", -1.0)
    assert _outcome(TOOLS, _tool(town="x"), _tool(city="Sydney")) == ("json_schema", "candidate_better", 1.0)
    unparsed = Answer(text="", tool_calls=(ToolCall("answer", None),))
    assert _outcome(TOOLS, _tool(city="Sydney"), unparsed)[1] == "candidate_worse"
    # A tool call against a plain text answer: nothing to compare them by.
    assert _outcome(TOOLS, _tool(city="Sydney"), _text("Sydney")) == ("tool_call", "unsettled", 0.0)


@pytest.mark.parametrize("key", ["output_config", "output_format"])
def test_json_output_against_the_requested_schema(key: str) -> None:
    fmt = {"type": "json_schema", "schema": SCHEMA}
    request = {key: {"format": fmt}} if key == "output_config" else {key: fmt}
    assert _outcome(request, _text('{"city": "Sydney"}'), _text('{ "city":"Sydney" }')) == \
        ("json_schema", "agree", 0.0)
    assert _outcome(request, _text('{"city": "Sydney"}'), _text('{"city": "Sydney", "x": 1}'))[1] == \
        "candidate_worse"
    assert _outcome(request, _text("not json"), _text('{"city": "Canberra"}'))[1] == "candidate_better"
    assert _outcome(request, _text('{"city": "Sydney"}'), _text('{"city": "Canberra"}'))[1] == "unsettled"


def test_user_grader_runs_only_on_what_built_ins_leave_and_is_contained() -> None:
    calls: list[tuple[str, str]] = []

    def mine(request: object, incumbent: Answer, candidate: Answer) -> Verdict | None:
        calls.append((incumbent.text, candidate.text))
        return Verdict("candidate_better", 0.25) if candidate.text == "Canberra" else None

    register_grader("t", mine)
    try:
        assert _outcome({}, _text("Sydney"), _text("Canberra")) == ("mine", "candidate_better", 0.25)
        assert _outcome({}, _text("Sydney"), _text("Perth")) == ("mine", "unsettled", 0.0)
        assert _outcome({}, _text("same"), _text("Same")) == ("exact", "agree", 0.0)
        assert _outcome({}, _text("Sydney"), _text("Canberra"), task="other") == ("exact", "unsettled", 0.0)
        assert len(calls) == 2
        register_grader("t", lambda r, a, b: "better", name="sloppy")  # not a Verdict: contained
        assert _outcome({}, _text("Sydney"), _text("Canberra")) == ("sloppy", "unsettled", 0.0)
    finally:
        unregister_grader("t")


def test_verdict_and_registration_are_checked() -> None:
    assert Verdict("candidate_worse").score == -1.0 and Verdict("tie").score == 0.0
    for bad in (lambda: Verdict("unsettled"), lambda: Verdict("agree", 0.5), lambda: Verdict("candidate_better", -1),
                lambda: Verdict("candidate_worse", -2.0)):
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(ValueError):
        register_grader("t", lambda r, a, b: None, name="judge")  # a built-in name
    with pytest.raises(TypeError):
        register_grader("t", "not callable")  # type: ignore[arg-type]


def test_schema_subset() -> None:
    assert is_valid({"city": "Canberra", "population": 400000}, SCHEMA)
    assert not is_valid({"city": "Canberra", "population": -1}, SCHEMA)
    assert not is_valid({"city": "Canberra", "population": True}, SCHEMA)  # a boolean is not an integer
    assert not is_valid({"population": 3}, SCHEMA)
    defs = {"$defs": {"item": {"type": "string", "maxLength": 3}}, "type": "array",
            "items": {"$ref": "#/$defs/item"}, "minItems": 1}
    assert is_valid(["ab", "abc"], defs)
    assert not is_valid(["abcd"], defs) and not is_valid([], defs)
    assert is_valid(3, {"anyOf": [{"type": "string"}, {"type": "integer"}]})
    assert not is_valid(3, {"oneOf": [{"type": "number"}, {"type": "integer"}]})
    loop = {"$ref": "#"}  # a reference cycle ends at the depth bound instead of recursing forever
    assert is_valid(1, loop)


@pytest.mark.parametrize("text, parsed", [
    ("VERDICT: A\nbecause", "A"), ("\n  verdict: b", "B"), ("**VERDICT:** TIE", "TIE"), ("VERDICT:B", "B"),
    ("I prefer A.\nVERDICT: A", None), ("VERDICT: C", None), ("", None), ("VERDICT: ABSOLUTELY", None),
])
def test_parse_verdict(text: str, parsed: str | None) -> None:
    message = {"content": [{"type": "text", "text": text}]}
    assert parse_verdict(message) == parsed
    assert parse_verdict(None) is None and parse_verdict({"content": "oops"}) is None


def test_swap_rule() -> None:
    assert combine("B", "A").label == "candidate_better"
    assert combine("A", "B").label == "candidate_worse"
    assert combine("A", "A").label == "tie"  # position bias
    assert combine("TIE", "A").label == "tie"
    assert combine("A", None).label == "unsettled"
    assert combine(None, None).label == "unsettled"


def _policy(evaluate: object) -> dict:
    return {"schema_version": 1, "version": "v", "rules": [{"task": "t", "evaluate": evaluate}]}


def test_evaluate_block_round_trips() -> None:
    block = {"model": "claude-haiku-4-5", "share": 0.1, "budget": 0.03, "max_tokens": 256, "pair_cost": 0.0042,
             "judge": {"model": "claude-sonnet-4-6", "rubric": "Prefer the correct label."}}
    policy = parse_policy(_policy(block), "p.yaml")
    evaluate = policy.rules[0].evaluate
    assert evaluate is not None and evaluate.judge is not None
    assert (evaluate.share, evaluate.budget, evaluate.max_tokens, evaluate.pair_cost, evaluate.judge.rubric) == \
        (0.1, 0.03, 256, 0.0042, "Prefer the correct label.")
    assert load_policy_text(dump_policy(policy), "again") == policy
    assert parse_policy(_policy({"model": "claude-haiku-4-5", "share": 0.5}), "p").rules[0].evaluate.budget == 0.05


@pytest.mark.parametrize("block, field", [
    ({"share": 0.1}, "evaluate.model"),
    ({"model": "claude-haiku-4-5"}, "evaluate.share"),
    ({"model": "claude-haiku-4-5", "share": 0.6}, "evaluate.share"),
    ({"model": "claude-haiku-4-5", "share": 0}, "evaluate.share"),
    ({"model": "gpt-4o", "share": 0.1}, "evaluate.model"),
    ({"model": "claude-haiku-4-5", "share": 0.1, "budget": 0}, "evaluate.budget"),
    ({"model": "claude-haiku-4-5", "share": 0.1, "max_tokens": True}, "evaluate.max_tokens"),
    ({"model": "claude-haiku-4-5", "share": 0.1, "pair_cost": -0.01}, "evaluate.pair_cost"),
    ({"model": "claude-haiku-4-5", "share": 0.1, "pair_cost": float("nan")}, "evaluate.pair_cost"),
    ({"model": "claude-haiku-4-5", "share": 0.1, "pair_cost": "0.01"}, "evaluate.pair_cost"),
    ({"model": "claude-haiku-4-5", "share": 0.1, "judge": {"rubric": "x"}}, "evaluate.judge.model"),
    ({"model": "claude-haiku-4-5", "share": 0.1, "judge": {"model": "claude-opus-4-6", "rubric": ""}},
     "evaluate.judge.rubric"),
    ({"model": "claude-haiku-4-5", "share": 0.1, "shares": 0.1}, "evaluate.shares"),
])
def test_evaluate_block_errors_name_rule_and_field(block: dict, field: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy(_policy(block), "p.yaml")
    assert str(err.value).startswith(f"p.yaml: rules[0] (task 't'): field '{field}'")

