"""Input files: expand paths, globs and directories; open plain, gzip and zstd files as streams of records.

The Collector's `file` exporter writes one JSON request per line, but with `compression: zstd` (without its native
compression feature gate) it writes each request as a 4-byte big-endian length followed by one zstd frame, whatever
the file is called. A `zstd`-compressed copy of a plain file is a single stream instead. Both are told apart by
content: the zstd magic number at the start, or right after the first length prefix.
"""

from __future__ import annotations

import glob
import gzip
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from otel_claude.cli_progress import Progress as Bar
from tuner._issues import TraceInputError

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_TRACE_SUFFIXES = (".json", ".jsonl", ".ndjson", ".gz", ".zst", ".zstd")


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files named directly, matched by a glob, or found under a directory (rotated files), in a stable order."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and _is_trace_name(p))
        elif path.is_file():
            found.append(path)
        else:
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True) if Path(m).is_file())
            if not matches:
                raise TraceInputError(f"{item}: no such file, directory or matching glob")
            found += matches
    unique = list(dict.fromkeys(found))
    if not unique:
        raise TraceInputError(f"no trace files found in {', '.join(inputs)}")
    return unique


def _is_trace_name(path: Path) -> bool:
    # Rotated Collector files are named like traces-2026-11-23T10-00-00.000.json, possibly compressed.
    return path.name.lower().endswith(_TRACE_SUFFIXES)


def _zstd() -> object:
    try:
        import zstandard
    except ImportError:
        raise TraceInputError(
            "reading .zst files needs the 'zstandard' package (pip install otel-claude[tuner])"
        ) from None
    return zstandard


class Progress:
    """Compressed bytes consumed across all files, shown as a bar with rate and ETA (`otel_claude.cli_progress`).

    `enabled`: None shows it when stderr is a terminal and reading takes long enough to need it.
    """

    def __init__(self, total_bytes: int, enabled: bool | None) -> None:
        self.done = 0
        self._shown = 0
        # Unasked, a bar appears only for reading that takes a while; asked for (--progress), at once.
        self._bar = Bar(max(total_bytes, 1), "reading traces", unit="B", unit_scale=True, enabled=enabled,
                        delay=0.5 if enabled is None else 0.0)

    def advance(self, bytes_done: int) -> None:
        """`bytes_done`: the position in the file being read."""
        position = self.done + bytes_done
        if position > self._shown:
            self._bar.update(position - self._shown)
            self._shown = position

    def file_done(self, size: int) -> None:
        self.done += size
        self.advance(0)

    def close(self) -> None:
        self._bar.close()


def _length_prefixed(raw: BinaryIO, name: str) -> Iterator[bytes]:
    decompressor = _zstd().ZstdDecompressor()  # type: ignore[attr-defined]
    number = 0
    while True:
        header = raw.read(4)
        if not header:
            return
        number += 1
        if len(header) < 4:
            raise TraceInputError(f"{name}: record {number}: truncated length prefix")
        size = int.from_bytes(header, "big")
        frame = raw.read(size)
        if len(frame) < size:
            raise TraceInputError(f"{name}: record {number}: truncated (expected {size} bytes, got {len(frame)})")
        yield decompressor.decompress(frame, max_output_size=max(size * 64, 1 << 20))


def records(path: Path, progress: Progress) -> Iterator[tuple[int, bytes]]:
    """(record number, bytes) for each record (line) of a file; the number is the line for line-oriented files."""
    name = str(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below, after the generator is exhausted
    except OSError as err:
        raise TraceInputError(f"{name}: cannot open: {err.strerror}") from None
    with raw:
        head = raw.read(8)
        raw.seek(0)
        if head[:2] == b"\x1f\x8b":
            stream: BinaryIO = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
        elif head[:4] == _ZSTD_MAGIC:
            stream = _zstd().ZstdDecompressor().stream_reader(raw, read_across_frames=True)  # type: ignore[attr-defined]
            stream = io.BufferedReader(stream)  # type: ignore[arg-type]
        elif head[4:8] == _ZSTD_MAGIC or path.suffix.lower() in (".zst", ".zstd"):
            for number, record in enumerate(_length_prefixed(raw, name), start=1):
                progress.advance(raw.tell())
                yield number, record
            return
        else:
            stream = raw
        try:
            for number, line in enumerate(stream, start=1):
                if number % 256 == 0:
                    progress.advance(raw.tell())
                yield number, line
        except (OSError, EOFError) as err:
            raise TraceInputError(f"{name}: cannot decompress: {err}") from None
        except Exception as err:
            if type(err).__name__ == "ZstdError":
                raise TraceInputError(f"{name}: cannot decompress: {err}") from None
            raise


def total_size(paths: list[Path]) -> int:
    return sum(os.path.getsize(p) for p in paths)
