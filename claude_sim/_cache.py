"""Prompt-cache semantics: exact-prefix entries per model, TTL with refresh on read, per-model minimum length.

For each request, each breakpoint looks for a live entry at its own block boundary or at the 19 before it (20
boundaries: the lookback), nearest first. The longest prefix found is read; every entry a breakpoint found is
refreshed (its TTL starts again: the content was used). Every breakpoint after the read prefix whose prefix
reaches the model's minimum writes the tokens since the previous boundary, at its own TTL. `input_tokens` is what
remains, i.e. what follows the last read or written boundary. Entries live in scenario time (the clock given).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from claude_sim._prefix import LOOKBACK_BLOCKS, TTL_SECONDS, Prompt


@dataclass(frozen=True)
class CacheUsage:
    input_tokens: int
    cache_read: int = 0
    write_5m: int = 0
    write_1h: int = 0

    @property
    def cache_creation(self) -> int:
        return self.write_5m + self.write_1h


class PromptCache:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        # (model, prefix key) -> (expiry time, ttl seconds)
        self._entries: dict[tuple[str, Hashable], tuple[float, float]] = {}
        self._sweep_at = 4096

    def __len__(self) -> int:
        return len(self._entries)

    def apply(self, model: str, prompt: Prompt, min_tokens: int, keys: Sequence[Hashable] | None = None,
              now: float | None = None) -> CacheUsage:
        """`keys`: one per block, equal exactly when the prefixes up to it are (default: the prompt's digests);
        `now`: the request's scenario time (default: the clock's)."""
        if not prompt.breakpoints:
            return CacheUsage(input_tokens=prompt.total_tokens)
        now = self._clock() if now is None else now
        digests = prompt.prefix_digests() if keys is None else keys
        cumulative: list[int] = []
        running = 0
        for block in prompt.blocks:
            running += block.tokens
            cumulative.append(running)

        hit = -1
        for breakpoint in prompt.breakpoints:
            for index in range(breakpoint, max(breakpoint - LOOKBACK_BLOCKS, -1), -1):
                key = (model, digests[index])
                entry = self._entries.get(key)
                if entry is not None and entry[0] > now:
                    self._entries[key] = (now + entry[1], entry[1])
                    hit = max(hit, index)
                    break
        read = cumulative[hit] if hit >= 0 else 0

        writes = {"5m": 0, "1h": 0}
        boundary = read
        for breakpoint in prompt.breakpoints:
            if breakpoint <= hit or cumulative[breakpoint] < min_tokens:
                continue
            ttl_name = prompt.blocks[breakpoint].ttl or "5m"
            writes[ttl_name] += cumulative[breakpoint] - boundary
            boundary = cumulative[breakpoint]
            seconds = TTL_SECONDS[ttl_name]
            self._entries[(model, digests[breakpoint])] = (now + seconds, seconds)
        self._evict(now)
        return CacheUsage(
            input_tokens=prompt.total_tokens - boundary,
            cache_read=read,
            write_5m=writes["5m"],
            write_1h=writes["1h"],
        )

    def _evict(self, now: float) -> None:
        # Amortised: sweep only when the table has doubled since the last sweep, so a long run neither keeps
        # dead entries forever nor pays a full scan per request.
        if len(self._entries) > self._sweep_at:
            self._entries = {key: value for key, value in self._entries.items() if value[0] > now}
            self._sweep_at = max(4096, 2 * len(self._entries))
