"""A rate-limit model: token buckets per minute for requests, input and output tokens, like the API's headers.

The API refills continuously and reports `anthropic-ratelimit-*-{limit,remaining,reset}` on every response.
When `enforce` is set a request that does not fit gets a 429 with `retry-after`; otherwise only headers change.
Buckets refill in scenario time (the clock's); waits told to the client (`retry-after`, reset times) are converted
to the wall time the client will spend (`to_wall`), so the SDK's real retry sleep covers the scenario wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from claude_sim._errors import ApiError


@dataclass(frozen=True)
class RateLimits:
    requests_per_minute: int = 4000
    input_tokens_per_minute: int = 2_000_000
    output_tokens_per_minute: int = 400_000
    enforce: bool = False


class _Bucket:
    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = float(per_minute)
        self.updated = now

    def refill(self, now: float) -> None:
        # Requests stamped with their planned time can arrive a little out of order: time never runs backwards.
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def wait_for(self, amount: float) -> float:
        return 0.0 if amount <= self.level else (min(amount, self.capacity) - self.level) / self.rate

    def until_full(self) -> float:
        return (self.capacity - self.level) / self.rate


def _rfc3339(wall_seconds_from_now: float) -> str:
    moment = datetime.fromtimestamp(time.time() + wall_seconds_from_now, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class RateLimiter:
    def __init__(self, limits: RateLimits, clock: Callable[[], float],
                 to_wall: Callable[[float], float] = lambda seconds: seconds) -> None:
        now = clock()
        self._limits = limits
        self._clock = clock
        self._to_wall = to_wall
        self._buckets = {
            "requests": _Bucket(limits.requests_per_minute, now),
            "input-tokens": _Bucket(limits.input_tokens_per_minute, now),
            "output-tokens": _Bucket(limits.output_tokens_per_minute, now),
        }

    def admit(self, input_tokens: int, max_tokens: int, now: float | None = None) -> dict[str, str]:
        """Take a request's share (output is reserved at max_tokens, as the API does) and return the headers;
        `now`: the request's scenario time (default: the clock's)."""
        now = self._clock() if now is None else now
        wanted = {"requests": 1.0, "input-tokens": float(input_tokens), "output-tokens": float(max_tokens)}
        for bucket in self._buckets.values():
            bucket.refill(now)
        wait = max(bucket.wait_for(wanted[name]) for name, bucket in self._buckets.items())
        if wait > 0 and self._limits.enforce:
            raise ApiError(429, "This request would exceed your organization's rate limit. Please try again later.",
                           retry_after=self._to_wall(wait), headers=self.headers())
        for name, bucket in self._buckets.items():
            bucket.level = max(0.0, bucket.level - wanted[name])
        return self.headers()

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, bucket in self._buckets.items():
            headers[f"anthropic-ratelimit-{name}-limit"] = str(int(bucket.capacity))
            headers[f"anthropic-ratelimit-{name}-remaining"] = str(int(bucket.level))
            headers[f"anthropic-ratelimit-{name}-reset"] = _rfc3339(self._to_wall(bucket.until_full()))
        tokens = (self._buckets["input-tokens"], self._buckets["output-tokens"])
        headers["anthropic-ratelimit-tokens-limit"] = str(int(sum(b.capacity for b in tokens)))
        headers["anthropic-ratelimit-tokens-remaining"] = str(int(sum(b.level for b in tokens)))
        headers["anthropic-ratelimit-tokens-reset"] = _rfc3339(self._to_wall(max(b.until_full() for b in tokens)))
        return headers
