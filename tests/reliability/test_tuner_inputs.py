"""Hostile trace files: every call span is either read or counted as skipped with its location, nothing crashes
the tuner, and memory stays bounded by the data that is kept (not by what was thrown away)."""

from __future__ import annotations

import copy
import gzip
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tuner import synthetic as syn
from tuner._ingest import load_dataset
from tuner._issues import TraceInputError

T0 = 1_763_900_000_000_000_000
S = 1_000_000_000
MODEL = "claude-haiku-4-5"
NUMERIC = ["gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.request.max_tokens",
           "gen_ai.usage.cache_read.input_tokens", "otel_claude.cost_usd", "gen_ai.response.time_to_first_chunk",
           "otel_claude.task", "gen_ai.request.model", "gen_ai.response.finish_reasons", "gen_ai.response.id"]


def calls(count: int, task: str = "classify", **kwargs: Any) -> list[syn.Span]:
    return [syn.call(start_ns=T0 + i * S, model=MODEL, task=task, output_tokens=50 + i % 7, response_id=f"msg_{i}",
                     **kwargs) for i in range(count)]


def request(spans: list[syn.Span]) -> dict[str, Any]:
    return json.loads(next(syn.otlp_lines(spans, batch=len(spans))))


def span_list(req: dict[str, Any]) -> list[dict[str, Any]]:
    return req["resourceSpans"][0]["scopeSpans"][0]["spans"]


# -- wrong types anywhere in a span ---------------------------------------------------------------------------------

huge = st.integers(min_value=-(2**80), max_value=2**80)
# builds(list), not just([]): just() hands out one shared object, which the mutations below would then grow.
junk = st.one_of(st.none(), st.booleans(), huge, st.floats(), st.text(max_size=6), st.builds(list), st.builds(dict))
wrapped = st.one_of(
    st.builds(lambda v: {"intValue": v}, st.one_of(huge, st.text(max_size=6), junk)),
    st.builds(lambda v: {"stringValue": v}, st.one_of(st.text(max_size=6), junk)),
    st.builds(lambda v: {"doubleValue": v}, st.one_of(st.floats(), junk)),
    st.builds(lambda v: {"boolValue": v}, junk),
    st.builds(lambda v: {"arrayValue": v}, st.one_of(st.builds(lambda x: {"values": x}, st.lists(junk, max_size=3)),
                                                      junk)),
    st.builds(lambda v: {"kvlistValue": v}, junk),
    junk,
)
mutation = st.one_of(
    st.tuples(st.just("attribute"), st.sampled_from(NUMERIC), wrapped),
    st.tuples(st.just("field"), st.sampled_from(["startTimeUnixNano", "endTimeUnixNano", "name", "attributes"]),
              st.one_of(junk, st.builds(str, huge))),
    st.tuples(st.just("attribute list entry"), st.just("attributes"), junk),
)


def mutate(span: dict[str, Any], change: tuple[str, str, Any]) -> None:
    kind, key, value = change
    # A copy: a change must not tie the document to an object another change (or example) also holds; appending
    # a list to itself would make a document no JSON writer can produce.
    value = copy.deepcopy(value)
    if kind == "field":
        span[key] = value
    elif not isinstance(span.get("attributes"), list):
        return  # an earlier change already replaced the whole list
    elif kind == "attribute list entry":
        span["attributes"].append(value)
    else:
        for attribute in span["attributes"]:
            if isinstance(attribute, dict) and attribute.get("key") == key:
                attribute["value"] = value


_SHARED: list[Any] = []  # one object in two changes, as hypothesis can generate


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(st.tuples(st.integers(0, 7), mutation), min_size=1, max_size=6))
@example(changes=[(0, ("field", "attributes", _SHARED)), (0, ("attribute list entry", "attributes", _SHARED))])
def test_every_call_span_is_read_or_reported(tmp_path: Path, changes: list[tuple[int, tuple[str, str, Any]]]) -> None:
    req = request(calls(8))
    for index, change in changes:
        mutate(span_list(req)[index], change)
    path = tmp_path / "mutated.jsonl"
    path.write_text(json.dumps(req) + "\n" + next(syn.otlp_lines(calls(3, task="other"))) + "\n")
    dataset, issues = load_dataset([str(path)])
    # A mutated span may stop being a call at all (operation name unreadable), so it can vanish from both
    # counts; but it is never counted twice, and the untouched line is always read in full.
    assert dataset.calls + issues.counts.get("bad span", 0) <= 11
    assert dataset.calls >= 3 + 8 - len({index for index, _ in changes})
    assert all(example.startswith(f"{path}:1: span ") for example in issues.examples)


@pytest.mark.parametrize(("name", "shape"), [
    ("resourceSpans is a number", {"resourceSpans": 5}),
    ("resourceSpans holds strings", {"resourceSpans": ["x"]}),
    ("scopeSpans is a string", {"resourceSpans": [{"scopeSpans": "x"}]}),
    ("spans holds numbers", {"resourceSpans": [{"scopeSpans": [{"spans": [1, 2]}]}]}),
    ("attributes is a mapping", {"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": {"a": 1}}]}]}]}),
])
def test_wrong_structure_is_skipped_with_location(tmp_path: Path, name: str, shape: dict[str, Any]) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps(shape) + "\n" + next(syn.otlp_lines(calls(4))) + "\n")
    dataset, issues = load_dataset([str(path)])
    assert dataset.calls == 4, name
    assert issues.total >= 1
    assert issues.examples[0].startswith(f"{path}:1")


def test_counts_beyond_int64_are_a_bad_span_not_a_crash(tmp_path: Path) -> None:
    req = request(calls(5))
    for attribute in span_list(req)[0]["attributes"]:
        if attribute["key"] == "gen_ai.usage.output_tokens":
            attribute["value"] = {"intValue": str(2**64)}
    span_list(req)[1]["endTimeUnixNano"] = str(2**70)
    path = tmp_path / "huge.jsonl"
    path.write_text(json.dumps(req) + "\n")
    dataset, issues = load_dataset([str(path)])
    assert dataset.calls == 3
    assert issues.counts == {"bad span": 2}
    assert any("output_tokens" in example for example in issues.examples)


# -- truncated, corrupt and mixed files -----------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [0.3, 0.5, 0.97])
def test_file_truncated_mid_line_keeps_the_whole_lines(tmp_path: Path, cut: float) -> None:
    lines = list(syn.otlp_lines(calls(40), batch=10))
    data = ("\n".join(lines) + "\n").encode()
    path = tmp_path / "cut.jsonl"
    path.write_bytes(data[: int(len(data) * cut)])
    whole = int(len(data) * cut) // (len(data) // 4)  # lines are of near-equal length
    dataset, issues = load_dataset([str(path)])
    assert dataset.calls in (10 * whole, 10 * (whole - 1) if whole else 0)
    assert issues.counts == {"malformed line": 1}
    assert "not JSON" in issues.examples[0]


def test_corrupt_first_line_of_a_large_file_does_not_load_it_whole(tmp_path: Path) -> None:
    """A rotated file that starts mid-record: the reader must fall back to lines without holding the file twice."""
    good = next(syn.otlp_lines(calls(64), batch=64))
    path = tmp_path / "rotated.jsonl"
    with path.open("w") as out:
        out.write(good[len(good) // 2:] + "\n")  # the tail of a record
        for _ in range(100):
            out.write(good + "\n")
    size = path.stat().st_size
    tracemalloc.start()
    dataset, issues = load_dataset([str(path)])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert dataset.calls == 100 * 64
    assert issues.counts == {"malformed line": 1}
    assert peak < size, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB file"


def test_mixed_directory_reads_every_format(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("\n".join(syn.otlp_lines(calls(5))) + "\n")
    (tmp_path / "b.json").write_text(json.dumps(syn.jaeger_document(calls(6, task="jaeger")), indent=2))
    (tmp_path / "c.json.gz").write_bytes(gzip.compress(("\n".join(syn.otlp_lines(calls(7))) + "\n").encode()))
    (tmp_path / "d.jsonl").write_text("")
    (tmp_path / "notes.txt").write_text("not a trace file name, never opened")
    dataset, issues = load_dataset([str(tmp_path)])
    assert dataset.calls == 18
    assert issues.counts == {"empty file": 1}


def test_collector_proto_output_fails_naming_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "traces.json"
    path.write_bytes(b"\x0a\x85\x02\x0a\x1b\x0a\x19\x0a\x0cservice.name\x12\x09\x0a\x07checkout" * 50)
    with pytest.raises(TraceInputError, match=r"traces\.json: not trace data.*format: json"):
        load_dataset([str(path)])


# -- size: giant attributes and huge label cardinality ---------------------------------------------------------------


def test_giant_attribute_values_cost_only_their_line(tmp_path: Path) -> None:
    spans = calls(50)
    spans[0].attributes["gen_ai.input.messages"] = "x" * 20_000_000  # captured content, not read by the tuner
    spans[1].attributes["otel_claude.task"] = "t" * 1_000_000  # a runaway label is read and kept, once
    path = syn.write_otlp(tmp_path / "giant.jsonl", spans, batch=1)
    tracemalloc.start()
    dataset, issues = load_dataset([str(path)])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert dataset.calls == 50 and issues.total == 0
    assert peak < 4 * 20_000_000, f"peak {peak / 1e6:.1f} MB"


def test_many_distinct_task_labels_ingest_with_bounded_memory(tmp_path: Path) -> None:
    """Ingest only, and small: about 0.3 ms per label goes into building the dataset; docs/reliability.md has the
    figures at scale, tuning included."""
    count = 5_000
    spans = (syn.call(start_ns=T0 + i, model=MODEL, task=f"task-{i:07d}", output_tokens=10) for i in range(count))
    path = syn.write_otlp(tmp_path / "labels.jsonl", spans, batch=512)
    tracemalloc.start()
    dataset, issues = load_dataset([str(path)])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert dataset.calls == count and issues.total == 0
    assert len(dataset.tasks()) == count
    # The peak includes one parsed 512-span line (a few MB) besides the per-label columns and stats.
    assert peak / count < 4000, f"{peak / count:.0f} bytes per distinct label"
