"""The data window of a tune: spans whose start falls in [since, until), for every kind of input.

A bound is an ISO 8601 date or time (no zone means UTC) or a span of time back from now (`90m`, `24h`, `7d`, `2w`),
so a nightly job can say `--since 7d` and read the last week, not the whole history.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


@dataclass(frozen=True)
class Window:
    since_ns: int | None = None  # inclusive
    until_ns: int | None = None  # exclusive

    def __post_init__(self) -> None:
        if self.since_ns is not None and self.until_ns is not None and self.since_ns >= self.until_ns:
            raise ValueError("the data window is empty: --since must be before --until")

    def describe(self) -> str:
        def show(ns: int | None) -> str:
            if ns is None:
                return "..."
            return datetime.fromtimestamp(ns / 1e9, timezone.utc).isoformat(timespec="seconds")

        return f"[{show(self.since_ns)}, {show(self.until_ns)})"


def parse_bound(text: str, now_ns: int | None = None) -> int:
    """Nanoseconds since the epoch for `--since` / `--until`; raises ValueError with a readable message."""
    relative = _RELATIVE.match(text)
    if relative:
        now = time.time_ns() if now_ns is None else now_ns
        return now - int(float(relative.group(1)) * _UNIT_SECONDS[relative.group(2)] * 1e9)
    iso = text.strip()
    if iso.endswith(("Z", "z")):  # fromisoformat accepts 'Z' only from Python 3.11
        iso = iso[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO 8601 time (2026-11-20, 2026-11-20T08:00:00Z) nor a span back from now "
            "(90m, 24h, 7d, 2w)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    # Integer arithmetic: a float timestamp would lose the nanoseconds of a far-from-epoch time.
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


ALL_TIME = Window()
