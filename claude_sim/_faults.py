"""Injected faults: what goes wrong, for how many matching requests (or with what probability)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from claude_sim._rng import unit

# kind -> HTTP status for faults answered with an error response
STATUS_FAULTS = {"rate_limit": 429, "overloaded": 529, "api_error": 500}
STREAM_FAULTS = ("stream_error",)
KINDS = (*STATUS_FAULTS, "stream_error", "drop", "stall")


@dataclass(frozen=True)
class Fault:
    """One fault rule.

    kind: rate_limit (429) | overloaded (529) | api_error (500) | stream_error (an SSE `error` event mid-stream) |
          drop (close the connection: before the response, or mid-stream for streams) | stall (wait `seconds`).
    count: how many matching requests it hits (None: unlimited, see `probability`).
    probability: share of matching requests hit, drawn deterministically from the seed and request number.
    after_events: for stream faults, drop and stall on streams: SSE events sent before the fault.
    retry_after: seconds sent in `retry-after` (and `retry-after-ms` when fractional) on status faults.
    path: only requests to this path; stream: only streaming (True) or non-streaming (False) requests.
    """

    kind: str
    count: int | None = 1
    probability: float = 1.0
    after_events: int = 3
    retry_after: float | None = None
    seconds: float = 1.0
    path: str = "/v1/messages"
    stream: bool | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        if not 0.0 < self.probability <= 1.0:
            raise ValueError(f"fault {self.kind}: probability {self.probability} outside (0, 1]")
        if self.count is not None and self.count < 1:
            raise ValueError(f"fault {self.kind}: count must be >= 1 or null")

    def applies(self, path: str, stream: bool) -> bool:
        if path != self.path:
            return False
        if self.stream is not None and self.stream != stream:
            return False
        # Stream-only faults cannot hit a JSON response: leave them for the next stream.
        return stream or self.kind not in STREAM_FAULTS


def parse_faults(items: list[Any], origin: str) -> list[Fault]:
    """Faults from Fault objects or mappings of Fault's fields; errors name `origin` and the item."""
    faults = []
    for index, item in enumerate(items):
        if isinstance(item, Fault):
            faults.append(item)
            continue
        if not isinstance(item, dict):
            raise ValueError(f"{origin}: faults[{index}]: expected a mapping")
        try:
            faults.append(Fault(**item))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{origin}: faults[{index}]: {err}") from None
    return faults


class FaultPlan:
    """Rules are consulted in order; the first that applies (and fires) is used, and its count goes down."""

    def __init__(self, seed: int, faults: list[Fault] | None = None) -> None:
        self._seed = seed
        self._rules: list[Fault] = list(faults or [])
        self._draws = 0

    def set(self, faults: list[Fault]) -> None:
        self._rules = list(faults)

    def take(self, path: str, stream: bool) -> Fault | None:
        for index, rule in enumerate(self._rules):
            if not rule.applies(path, stream):
                continue
            if rule.probability < 1.0:
                self._draws += 1
                if unit(self._seed, "fault", self._draws) >= rule.probability:
                    continue
            if rule.count is not None:
                remaining = rule.count - 1
                if remaining:
                    self._rules[index] = replace(rule, count=remaining)
                else:
                    del self._rules[index]
            return rule
        return None
