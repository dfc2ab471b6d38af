"""JSON encoding cut to a length while it is produced, for opt-in content attributes.

Encoding a 10 MB answer in full to keep its first 16 kB would cost the service 10 MB more peak memory per call.
Here no string is encoded beyond what the limit can show, and encoding stops once the limit is reached; the text
produced is exactly `json.dumps(value, default=str)` cut to the limit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

__all__ = ["TRUNCATED", "clipped_json"]

TRUNCATED = "...[truncated]"


def clipped_json(value: Any, limit: int) -> str:
    """`json.dumps(value, default=str)`, or its first `limit` characters and TRUNCATED when it is longer."""
    parts: list[str] = []
    size = 0
    # Any string longer than limit + 1 characters encodes to more than `limit`: the rest of it is never needed.
    for piece in _pieces(value, limit + 1):
        parts.append(piece)
        size += len(piece)
        if size > limit:
            return "".join(parts)[:limit] + TRUNCATED
    return "".join(parts)


def _key(key: Any) -> str:
    # json.dumps's rules for non-string keys.
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, float)):
        return json.dumps(key)
    return str(key)


def _pieces(value: Any, longest: int) -> Iterator[str]:
    if isinstance(value, str):
        yield json.dumps(value[:longest])
    elif value is None or isinstance(value, (bool, int, float)):
        yield json.dumps(value)
    elif isinstance(value, dict):
        yield "{"
        for number, (key, item) in enumerate(value.items()):
            yield (", " if number else "") + json.dumps(_key(key)[:longest]) + ": "
            yield from _pieces(item, longest)
        yield "}"
    elif isinstance(value, (list, tuple)):
        yield "["
        for number, item in enumerate(value):
            if number:
                yield ", "
            yield from _pieces(item, longest)
        yield "]"
    else:
        yield json.dumps(str(value)[:longest])
