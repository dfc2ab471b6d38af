"""Reading results: fields and usage from SDK models or raw JSON bodies, one extraction path for both."""

from __future__ import annotations

from typing import Any

from .catalog import Usage

__all__ = ["UsageReading", "field", "fields", "to_int64", "token_count"]

def field(obj: Any, name: str) -> Any:
    """One accessor for SDK models and the dicts of raw JSON bodies, so there is one extraction path for both."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def fields(obj: Any) -> dict[str, Any]:
    """All fields of an SDK model or a raw JSON object as one dict, for several lookups at the cost of one."""
    if isinstance(obj, dict):
        return obj
    data = getattr(obj, "__dict__", None)
    if not isinstance(data, dict):
        return {}
    # pydantic 2 keeps fields the model does not declare (newer API fields on an older SDK) apart from __dict__.
    extra = getattr(obj, "__pydantic_extra__", None)
    return {**data, **extra} if extra else data


# OTLP encodes integer attributes as int64: one larger value makes the exporter drop the whole batch it is in.
_INT64_MAX = 2**63 - 1


def to_int64(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and -_INT64_MAX <= value <= _INT64_MAX:
        return value
    return None


def token_count(value: Any) -> int | None:
    """A token count as the API must send it (a non-negative integer that fits OTLP's int64), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _INT64_MAX:
        return value
    return None


# Usage fields -> UsageReading slots. output_tokens first: message_start's placeholder count is skipped by slicing.
_COUNTS = (
    ("output_tokens", "output"),
    ("input_tokens", "input"),
    ("cache_read_input_tokens", "cache_read"),
    ("cache_creation_input_tokens", "cache_write"),
)
_NESTED = (
    ("cache_creation", "ephemeral_5m_input_tokens", "cache_5m"),
    ("cache_creation", "ephemeral_1h_input_tokens", "cache_1h"),
    ("output_tokens_details", "thinking_tokens", "reasoning"),
)


class UsageReading:
    """The usage of one call, merged field by field (stream events overwrite: message_delta is cumulative).

    A count the API should never send (negative, fractional, a string, past int64) is unreadable: the field is left
    unknown and named in `unreadable`, and a call with any unreadable count gets no cost and adds to no counter
    (a negative count would make a negative cost and take the cost counter, which must only go up, down).
    """

    __slots__ = ("cache_1h", "cache_5m", "cache_read", "cache_write", "input", "output", "reasoning", "speed", "tier",
                 "unreadable")

    def __init__(self) -> None:
        self.input: int | None = None
        self.output: int | None = None
        self.cache_read: int | None = None
        self.cache_write: int | None = None
        self.cache_5m: int | None = None
        self.cache_1h: int | None = None
        self.reasoning: int | None = None
        self.tier: str | None = None
        self.speed: str | None = None
        self.unreadable: tuple[str, ...] = ()  # the API's names of the fields whose last value was unreadable

    def merge(self, usage: Any, *, with_output: bool = True) -> None:
        """Take every field that `usage` carries. `with_output=False` skips message_start's placeholder count."""
        if usage is None:
            return
        data = fields(usage)
        for source, name in _COUNTS if with_output else _COUNTS[1:]:
            value = data.get(source)
            if value is not None:
                count = token_count(value)
                if count is None:
                    self._unreadable(source, name)
                else:
                    setattr(self, name, count)
                    if self.unreadable:
                        self._readable(source)
        for group, source, name in _NESTED:
            inner = data.get(group)
            if inner is not None:
                value = fields(inner).get(source)
                if value is not None:
                    count = token_count(value)
                    if count is None:
                        self._unreadable(f"{group}.{source}", name)
                    else:
                        setattr(self, name, count)
                        if self.unreadable:
                            self._readable(f"{group}.{source}")
        tier = data.get("service_tier")
        if isinstance(tier, str):
            self.tier = tier
        speed = data.get("speed")
        if isinstance(speed, str):
            self.speed = speed

    def _unreadable(self, source: str, name: str) -> None:
        setattr(self, name, None)
        self.mark_unreadable(source)

    def _readable(self, source: str) -> None:
        self.unreadable = tuple(u for u in self.unreadable if u != source)

    def mark_unreadable(self, source: str) -> None:
        if source not in self.unreadable:
            self.unreadable = (*self.unreadable, source)

    def write_split(self) -> tuple[int, int]:
        """(5m, 1h) cache-write tokens; an unsplit total is 5m, the API's default TTL."""
        five, hour = self.cache_5m or 0, self.cache_1h or 0
        total = self.cache_write or 0
        if five + hour < total:
            five = total - hour
        return five, hour

    def for_cost(self, *, batch: bool) -> Usage:
        five, hour = self.write_split()
        return Usage(
            input_tokens=self.input or 0,
            output_tokens=self.output or 0,
            cache_read_tokens=self.cache_read or 0,
            cache_write_5m_tokens=five,
            cache_write_1h_tokens=hour,
            batch=batch or self.tier == "batch",
            fast=self.speed == "fast",
        )
