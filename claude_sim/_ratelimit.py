"""A rate-limit model: token buckets per minute for requests, input and output tokens, like the API's headers.

The API refills continuously and reports `anthropic-ratelimit-*-{limit,remaining,reset}` on every response.
When `enforce` is set a request that does not fit gets a 429 with `retry-after`; otherwise only headers change.
Output tokens are reserved at `max_tokens` on admission and the unused part is given back when the reply is done
(`settle`), as the API does. `burst_seconds` sizes each bucket: 60 holds a full minute of the limit; less models
a limit enforced over shorter intervals, where a burst well under the per-minute figure already gets 429s.
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
    burst_seconds: float = 60.0


class _Bucket:
    def __init__(self, per_minute: int, now: float, burst_seconds: float) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_seconds)
        self.level = self.capacity
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
        burst = limits.burst_seconds
        self._to_wall = to_wall
        self._buckets = {
            "requests": _Bucket(limits.requests_per_minute, now, burst),
            "input-tokens": _Bucket(limits.input_tokens_per_minute, now, burst),
            "output-tokens": _Bucket(limits.output_tokens_per_minute, now, burst),
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

    def settle(self, max_tokens: int, output_tokens: int) -> None:
        """A reply is done: give back the output tokens reserved at admission and not used."""
        bucket = self._buckets["output-tokens"]
        bucket.refill(self._clock())
        bucket.level = min(bucket.capacity, bucket.level + max(0, max_tokens - output_tokens))

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, bucket in self._buckets.items():
            headers[f"anthropic-ratelimit-{name}-limit"] = str(bucket.per_minute)
            headers[f"anthropic-ratelimit-{name}-remaining"] = str(int(bucket.level))
            headers[f"anthropic-ratelimit-{name}-reset"] = _rfc3339(self._to_wall(bucket.until_full()))
        tokens = (self._buckets["input-tokens"], self._buckets["output-tokens"])
        headers["anthropic-ratelimit-tokens-limit"] = str(sum(b.per_minute for b in tokens))
        headers["anthropic-ratelimit-tokens-remaining"] = str(int(sum(b.level for b in tokens)))
        headers["anthropic-ratelimit-tokens-reset"] = _rfc3339(self._to_wall(max(b.until_full() for b in tokens)))
        return headers
