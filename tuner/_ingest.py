"""Read trace files of any supported format into a call table, one file at a time, in bounded memory.

Each file is sniffed from its first record: OTLP JSON lines (either spelling, bare or wrapped in Jaeger api/v3's
`{"result": ...}`), Jaeger JSON of any shape, or a pretty-printed single document of any of these. Bad lines and
spans are skipped and reported; a file with no trace record fails.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tuner import _jaeger, _otlp
from tuner._dataset import Dataset, build_dataset
from tuner._issues import Issues, TraceInputError
from tuner._records import CallTable
from tuner._sources import Progress, expand_inputs, records, total_size
from tuner._window import ALL_TIME, Window

_NOT_TRACES = (
    "not trace data: expected OTLP JSON lines ('resourceSpans' or 'resource_spans', bare or as a Jaeger api/v3 "
    "'result') or Jaeger JSON ('data', a trace, or a list of traces); the Collector's 'format: proto' is not "
    "supported, use 'format: json'"
)


def _dispatch(obj: Any, table: CallTable, issues: Issues, where: str) -> bool:
    if isinstance(obj, dict) and isinstance(obj.get("result"), dict) and _otlp.request_names(obj["result"]):
        obj = obj["result"]  # Jaeger api/v3: the TracesData inside a grpc-gateway wrapper
    if _otlp.request_names(obj):
        _otlp.read_request(obj, table, issues, where)
        return True
    jaeger = _jaeger.traces_of(obj)
    if jaeger is not None:
        _jaeger.read_traces(*jaeger, table, issues, where)
        return True
    return False


def _lines(name: str, numbered: Iterator[tuple[int, bytes]], table: CallTable, issues: Issues) -> int:
    good = 0
    for number, line in numbered:
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            obj = json.loads(line)
        except ValueError as err:
            issues.skip("malformed line", where, f"not JSON ({err})")
            continue
        if _dispatch(obj, table, issues, where):
            good += 1
        else:
            issues.skip("malformed line", where, "JSON but not an OTLP request or Jaeger document")
    return good


def _is_json(record: bytes) -> bool:
    try:
        json.loads(record)
    except ValueError:
        return False
    return True


def _opens_document(record: bytes) -> bool:
    # Length first: stripping a giant line would copy it.
    return len(record) < 64 and record.strip() in (b"{", b"[")


def read_file(path: Path, table: CallTable, issues: Issues, progress: Progress) -> None:
    name = str(path)
    numbered = records(path, progress)
    first: tuple[int, bytes] | None = next(((n, r) for n, r in numbered if r.strip()), None)
    if first is None:
        issues.skip("empty file", name, "no records")
        return
    if _is_json(first[1]) or not _opens_document(first[1]):
        # Lines, possibly with a broken first one (a rotated file that starts mid-record): read them one at a time.
        good = _lines(name, iter([first]), table, issues) + _lines(name, numbered, table, issues)
    else:
        # A lone opening bracket: a pretty-printed document (Jaeger downloads are), which is parsed whole.
        rest = [first[1], *(record for _, record in numbered)]
        try:
            document = json.loads(b"".join(rest))
        except ValueError:
            good = _lines(name, enumerate(rest, start=first[0]), table, issues)
        else:
            good = int(_dispatch(document, table, issues, name))
    if not good:
        raise TraceInputError(f"{name}: {_NOT_TRACES}")


def read_files(paths: list[Path], table: CallTable, issues: Issues, progress: Progress) -> None:
    for path in paths:
        read_file(path, table, issues, progress)
        progress.file_done(path.stat().st_size)
    progress.close()


def load_dataset(
    inputs: list[str], show_progress: bool | None = False, window: Window = ALL_TIME
) -> tuple[Dataset, Issues]:
    """Read every input file and aggregate it; the call table is dropped once the dataset is built."""
    paths = expand_inputs(inputs)
    table = CallTable(window.since_ns, window.until_ns)
    issues = Issues()
    # Parsed JSON is acyclic and freed by reference counting; the cyclic collector would rescan every live
    # container on each burst of parsing, which more than doubled ingest time in bench/bench_tune.py.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        read_files(paths, table, issues, Progress(total_size(paths), show_progress))
    finally:
        if was_enabled:
            gc.enable()
    columns, unmatched = table.columns()
    return build_dataset(columns, table.spans, table.feedback, unmatched, table.verdicts), issues
