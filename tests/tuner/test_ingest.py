"""Reading traces: OTLP JSON lines (plain, gzip, zstd stream, Collector zstd records), Jaeger JSON, bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tuner import synthetic as syn
from tuner._ingest import load_dataset
from tuner._issues import TraceInputError

T0 = 1_763_900_000_000_000_000
S = 1_000_000_000


def _spans() -> list[syn.Span]:
    spans = []
    for i in range(10):
        model = "claude-sonnet-4-6" if i < 6 else "claude-haiku-4-5"
        spans.append(
            syn.call(
                start_ns=T0 + i * 60 * S,
                model=model,
                task="classify" if i % 2 == 0 else "summarize",
                output_tokens=100 + i,
                max_tokens=105,
                response_id=f"msg_{i}",
                prefix="fp-a",
                prefix_tokens=2000,
                ttft=0.1 * (i + 1),
            )
        )
    failed = syn.call(start_ns=T0, model="claude-haiku-4-5", task="classify", output_tokens=0, error="overloaded_error")
    spans.append(failed)
    spans.append(syn.feedback(start_ns=T0 + 5, response_id="msg_0", score=1.0))
    spans.append(syn.feedback(start_ns=T0 + 6, response_id="msg_0", score=0.0))
    spans.append(syn.feedback(start_ns=T0 + 7, response_id="msg_2", score=1.0))
    spans.append(syn.feedback(start_ns=T0 + 8, response_id="msg_unknown", score=1.0))
    spans.append(syn.Span("GET /health", T0, T0 + 10))
    return spans


def test_otlp_lines_plain(tmp_path: Path) -> None:
    path = syn.write_otlp(tmp_path / "traces.json", _spans(), batch=4)
    _check_relaxed(load_dataset([str(path)]))


def _check_relaxed(result: tuple) -> None:
    dataset, issues = result
    assert issues.total == 0, issues.examples
    assert (dataset.spans, dataset.calls, dataset.feedback, dataset.feedback_unmatched) == (16, 11, 4, 1)
    by_key = {(m.task, m.model): m for m in dataset.models}
    sonnet = by_key[("classify", "claude-sonnet-4-6")]
    assert sonnet.calls == 3 and sonnet.truncated == 0
    assert sorted(sonnet.lengths.tolist()) == [100, 102, 104]
    # msg_0 has two scores (mean 0.5) and msg_2 one (1.0): quality is averaged per call.
    assert sonnet.quality is not None and sonnet.quality.n == 2 and sonnet.quality.mean == pytest.approx(0.75)
    haiku = by_key[("classify", "claude-haiku-4-5")]  # calls 6 and 8 hit the 105 cap; plus one error
    assert (haiku.calls, haiku.errors, haiku.truncated) == (3, 1, 2)
    assert haiku.censored.tolist() == [True, True] and haiku.lengths.tolist() == [105, 105]
    assert haiku.ttft_p95 == pytest.approx(0.7 + 0.95 * (0.9 - 0.7))
    assert haiku.max_tokens == 105
    classify_prefix = next(p for p in dataset.prefixes if p.task == "classify")
    # classify calls are i = 0, 2, 4, 6, 8: 120 s apart, all within 1 h, none within 5 min... 120 s < 300 s.
    assert (classify_prefix.calls, classify_prefix.gaps) == (5, 4)
    assert classify_prefix.gaps_within == {"5m": 4, "1h": 4}
    assert classify_prefix.prefix_tokens == 2000


def test_gzip_and_directory_of_rotated_files(tmp_path: Path) -> None:
    lines = list(syn.otlp_lines(_spans(), batch=3))
    (tmp_path / "rot").mkdir()
    (tmp_path / "rot" / "traces-1.json").write_text("\n".join(lines[:2]) + "\n")
    with gzip.open(tmp_path / "rot" / "traces-2.json.gz", "wt") as out:
        out.write("\n".join(lines[2:]) + "\n")
    (tmp_path / "rot" / "notes.txt").write_text("ignored: not a trace file name")
    _check_relaxed(load_dataset([str(tmp_path / "rot")]))
    _check_relaxed(load_dataset([str(tmp_path / "rot" / "traces-*")]))


def test_zstd_stream_and_collector_length_prefixed_records(tmp_path: Path) -> None:
    zstandard = pytest.importorskip("zstandard")
    lines = list(syn.otlp_lines(_spans(), batch=3))
    stream = tmp_path / "a.json.zst"
    stream.write_bytes(zstandard.ZstdCompressor().compress(("\n".join(lines) + "\n").encode()))
    _check_relaxed(load_dataset([str(stream)]))
    framed = tmp_path / "b.json.zst"
    with open(framed, "wb") as out:
        for line in lines:
            frame = zstandard.ZstdCompressor().compress(line.encode())
            out.write(len(frame).to_bytes(4, "big") + frame)
    _check_relaxed(load_dataset([str(framed)]))


def test_jaeger_json_with_arrays_as_strings(tmp_path: Path) -> None:
    path = tmp_path / "jaeger.json"
    path.write_text(json.dumps(syn.jaeger_document(_spans()), indent=2))
    assert path.read_text().startswith("{\n")  # pretty-printed like a UI download
    _check_relaxed(load_dataset([str(path)]))


def test_malformed_lines_and_spans_are_skipped_and_located(tmp_path: Path) -> None:
    lines = list(syn.otlp_lines(_spans(), batch=100))
    bad_span = json.loads(lines[0])
    attrs = bad_span["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
    for attribute in attrs:
        if attribute["key"] == "gen_ai.usage.output_tokens":
            attribute["value"] = {"intValue": "lots"}
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(['{"resourceSpans": [', json.dumps(bad_span), "[1, 2]", ""]) + "\n")
    dataset, issues = load_dataset([str(path)])
    assert issues.counts == {"malformed line": 2, "bad span": 1}
    assert issues.examples[0].startswith(f"{path}:1: not JSON")
    assert any(e.startswith(f"{path}:2: span 0: attribute 'gen_ai.usage.output_tokens'") for e in issues.examples)
    assert issues.examples[-1].startswith(f"{path}:3: JSON but not an OTLP request")
    assert dataset.calls == 10  # the other spans of the line with the bad span were kept


def test_file_that_is_not_trace_data_fails_clearly(tmp_path: Path) -> None:
    csv = tmp_path / "prices.json"
    csv.write_text("model,input\nclaude,3\n")
    with pytest.raises(TraceInputError, match=r"prices\.json: not trace data"):
        load_dataset([str(csv)])
    other = tmp_path / "config.json"
    other.write_text(json.dumps({"receivers": {}}))
    with pytest.raises(TraceInputError, match=r"config\.json: not trace data"):
        load_dataset([str(other)])
    with pytest.raises(TraceInputError, match="no such file"):
        load_dataset([str(tmp_path / "missing-*.json")])


def test_corrupt_compressed_files_fail_with_the_file_name(tmp_path: Path) -> None:
    data = gzip.compress(("\n".join(syn.otlp_lines(_spans(), batch=3)) + "\n").encode())
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceInputError, match=r"cut\.json\.gz: cannot decompress"):
        load_dataset([str(cut)])
    zstandard = pytest.importorskip("zstandard")
    frame = zstandard.ZstdCompressor().compress(next(syn.otlp_lines(_spans())).encode())
    framed = tmp_path / "cut.json.zst"
    framed.write_bytes(len(frame).to_bytes(4, "big") + frame[:-10])
    with pytest.raises(TraceInputError, match=r"cut\.json\.zst: record 1: truncated"):
        load_dataset([str(framed)])


def test_out_of_range_numbers_are_skipped_without_misaligning_rows(tmp_path: Path) -> None:
    spans = _spans()
    line = json.loads(next(syn.otlp_lines(spans, batch=100)))
    raw = line["resourceSpans"][0]["scopeSpans"][0]["spans"]
    for attribute in raw[0]["attributes"]:
        if attribute["key"] == "gen_ai.usage.cache_read.input_tokens":
            attribute["value"] = {"intValue": str(2**64)}
    raw[1]["endTimeUnixNano"] = str(2**70)
    path = tmp_path / "big.json"
    path.write_text(json.dumps(line) + "\n")
    dataset, issues = load_dataset([str(path)])
    assert issues.counts == {"bad span": 2}
    assert any("gen_ai.usage.cache_read.input_tokens" in e for e in issues.examples)
    assert dataset.calls == 9
    assert sum(m.calls for m in dataset.models) == 9


def test_infinite_numbers_are_skipped_not_raised(tmp_path: Path) -> None:
    """JSON readers accept `Infinity`; int() of it overflows rather than failing with ValueError."""
    spans = _spans()
    line = json.loads(next(syn.otlp_lines(spans, batch=100)))
    raw = line["resourceSpans"][0]["scopeSpans"][0]["spans"]
    raw[0]["startTimeUnixNano"] = float("inf")
    for attribute in raw[1]["attributes"]:
        if attribute["key"] == "gen_ai.usage.output_tokens":
            attribute["value"] = {"doubleValue": float("inf")}
    otlp = tmp_path / "inf.json"
    otlp.write_text(json.dumps(line) + "\n")
    dataset, issues = load_dataset([str(otlp)])
    assert issues.counts == {"bad span": 2} and dataset.calls == 9

    document = syn.jaeger_document(spans)
    document["data"][0]["spans"][0]["duration"] = float("-inf")
    jaeger = tmp_path / "inf-jaeger.json"
    jaeger.write_text(json.dumps(document))
    dataset, issues = load_dataset([str(jaeger)])
    assert issues.counts == {"bad span": 1} and dataset.calls == 10
