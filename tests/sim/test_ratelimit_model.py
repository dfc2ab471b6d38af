"""The rate-limit model's bucket size, the output tokens it gives back when a reply is done, and its error count.
Time stands still (an injected clock), so every refill in these tests is one the test made."""

from __future__ import annotations

import anthropic
import pytest
from sim_helpers import FakeClock, user

from claude_sim import RateLimits, SimServer


def _raw(sim: SimServer, max_tokens: int = 20) -> tuple[dict[str, str], anthropic.types.Message]:
    client = anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=0)
    raw = client.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=max_tokens, messages=user())
    return {k.lower(): v for k, v in raw.headers.items()}, raw.parse()


def test_a_bucket_can_hold_less_than_a_minute_of_the_limit() -> None:
    clock = FakeClock()
    limits = RateLimits(requests_per_minute=600, enforce=True, burst_seconds=1.0)  # 10 at once, 10 per second
    with SimServer(rate_limits=limits, clock=clock) as sim:
        headers, _ = _raw(sim)
        assert headers["anthropic-ratelimit-requests-limit"] == "600"  # the per-minute figure, as the API reports
        assert headers["anthropic-ratelimit-requests-remaining"] == "9"
        for _ in range(9):
            _raw(sim)
        with pytest.raises(anthropic.RateLimitError):
            _raw(sim)
        clock.advance(0.1)  # one request's worth refills
        _raw(sim)
        assert sim.errors_served == {429: 1}


def test_unused_output_tokens_come_back_when_the_reply_is_done() -> None:
    limits = RateLimits(output_tokens_per_minute=6000, enforce=True)
    with SimServer(rate_limits=limits, clock=FakeClock()) as sim:
        _, first = _raw(sim, max_tokens=4000)  # reserves 4,000, uses far fewer
        headers, _ = _raw(sim, max_tokens=4000)  # fits only because the first one's unused tokens came back
        used = first.usage.output_tokens
        assert used < 4000
        assert int(headers["anthropic-ratelimit-output-tokens-remaining"]) == 6000 - used - 4000
