"""Trace files other software writes, each built from its format's own definition, read to the same dataset and the
same policy as the project's own file exporter writes on the same spans.

- OTLP JSON with proto field names: the OpenTelemetry SDK's OTLP encoder, then protobuf `json_format` with
  `preserving_proto_field_name` (and, for contrast, protobuf's default lowerCamelCase).
- Jaeger api/v3: `{"result": TracesData}` as its HTTP gateway marshals it (jaeger cmd/query/app/apiv3).
- Jaeger JSON (`model/json`): a bare trace object and a list of traces, as jaeger-ui uploads them.
- The Collector file exporter's legacy `compression: zstd` records (4-byte big-endian length + one frame each,
  exporter/fileexporter file_writer.go), in a file whose name says nothing about zstd.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from opentelemetry.sdk.trace import ReadableSpan
from span_sets import mixed_calls

from otel_claude.otlp_file import OTLPJsonFileSpanExporter
from otel_claude.policy import dump_policy
from tuner import synthetic as syn
from tuner._dataset import Dataset
from tuner._ingest import load_dataset
from tuner._tune import TuneOptions, build_policy, decide_all

BATCH = 64


def _readables() -> list[ReadableSpan]:
    return [syn.readable(span, number) for number, span in enumerate(mixed_calls(calls=400))]


def _batches(spans: Sequence[ReadableSpan]) -> list[Sequence[ReadableSpan]]:
    return [spans[i : i + BATCH] for i in range(0, len(spans), BATCH)]


def _policy(dataset: Dataset) -> str:
    options = TuneOptions()
    return dump_policy(build_policy(dataset, decide_all(dataset, options), options))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Dataset, str]:
    """What the project's own exporter writes for these spans, read back and tuned."""
    path = tmp_path_factory.mktemp("own") / "spans.jsonl"
    exporter = OTLPJsonFileSpanExporter(path)
    for batch in _batches(_readables()):
        exporter.export(batch)
    exporter.shutdown()
    dataset, issues = load_dataset([str(path)])
    assert issues.total == 0 and dataset.calls == 400
    return dataset, _policy(dataset)


def _proto_lines(path: Path, spans: Sequence[ReadableSpan], snake: bool) -> None:
    with open(path, "w") as out:
        for batch in _batches(spans):
            message = json_format.MessageToJson(encode_spans(batch), preserving_proto_field_name=snake, indent=None)
            out.write(message + "\n")


def _jaeger_api_v3(path: Path, spans: Sequence[ReadableSpan]) -> None:
    traces = TracesData(resource_spans=encode_spans(spans).resource_spans)
    path.write_text(json.dumps({"result": json_format.MessageToDict(traces)}, indent=2))


def _jaeger_trace(trace_id: str, spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    return {
        "traceID": trace_id,
        "spans": [
            {
                "traceID": trace_id,
                "spanID": format(span.context.span_id, "016x"),
                "operationName": span.name,
                "references": [],
                "startTime": span.start_time // 1000,
                "duration": (span.end_time - span.start_time) // 1000,
                "tags": [syn.jaeger_tag(k, v) for k, v in (span.attributes or {}).items()],
                "logs": [],
                "processID": "p1",
                "warnings": None,
            }
            for span in spans
        ],
        "processes": {"p1": {"serviceName": "synthetic", "tags": []}},
        "warnings": None,
    }


def _jaeger_trace_object(path: Path, spans: Sequence[ReadableSpan]) -> None:
    path.write_text(json.dumps(_jaeger_trace("0" * 31 + "1", spans), indent=2))


def _jaeger_trace_list(path: Path, spans: Sequence[ReadableSpan]) -> None:
    traces = [_jaeger_trace(format(n + 1, "032x"), batch) for n, batch in enumerate(_batches(spans))]
    path.write_text(json.dumps(traces))


def _collector_legacy_zstd(path: Path, spans: Sequence[ReadableSpan]) -> None:
    zstandard = pytest.importorskip("zstandard")
    with open(path, "wb") as out:
        for batch in _batches(spans):
            line = json_format.MessageToJson(encode_spans(batch), indent=None).encode()
            frame = zstandard.ZstdCompressor().compress(line)
            out.write(len(frame).to_bytes(4, "big") + frame)


WRITERS: dict[str, tuple[str, Callable[[Path, Sequence[ReadableSpan]], None]]] = {
    "otlp snake_case": ("spans.json", lambda p, s: _proto_lines(p, s, snake=True)),
    "otlp protobuf camelCase": ("spans.json", lambda p, s: _proto_lines(p, s, snake=False)),
    "jaeger api/v3": ("trace.json", _jaeger_api_v3),
    "jaeger trace object": ("trace.json", _jaeger_trace_object),
    "jaeger trace list": ("traces.json", _jaeger_trace_list),
    "collector legacy zstd": ("spans.json", _collector_legacy_zstd),
}


@pytest.mark.parametrize("variant", list(WRITERS))
def test_format_reads_to_the_same_policy_as_the_own_exporter(
    variant: str, tmp_path: Path, reference: tuple[Dataset, str]
) -> None:
    name, write = WRITERS[variant]
    path = tmp_path / name
    write(path, _readables())
    dataset, issues = load_dataset([str(path)])
    expected, policy = reference
    assert issues.total == 0, issues.examples
    for field in ("spans", "calls", "feedback", "feedback_unmatched", "start_ns", "end_ns"):
        assert getattr(dataset, field) == getattr(expected, field), field
    assert [(m.task, m.model, m.calls, m.errors, m.cancelled, m.truncated) for m in dataset.models] == [
        (m.task, m.model, m.calls, m.errors, m.cancelled, m.truncated) for m in expected.models
    ]
    assert dataset.prefixes == expected.prefixes
    assert _policy(dataset) == policy


def test_snake_case_is_what_it_claims(tmp_path: Path) -> None:
    """The generator really writes proto field names (else the test above would prove nothing new)."""
    path = tmp_path / "spans.json"
    _proto_lines(path, _readables()[:3], snake=True)
    text = path.read_text()
    assert '"resource_spans"' in text and '"start_time_unix_nano"' in text and '"int_value"' in text
    assert "resourceSpans" not in text and "startTimeUnixNano" not in text
