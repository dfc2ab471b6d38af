"""Rate limits in scenario time: buckets refill with the scenario clock, and a 429 asks for the wall time that
covers the scenario wait (the SDK's retry sleep is real)."""

from __future__ import annotations

import pytest
from sim_helpers import raw_post, user

from claude_sim import RateLimits, ScenarioClock, SimServer


class Wall:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_retry_after_is_the_scenario_wait_in_wall_seconds() -> None:
    wall = Wall()
    clock = ScenarioClock(60.0, fast_forward=False, wall=wall)  # a scenario minute per wall second
    limits = RateLimits(requests_per_minute=2, enforce=True)
    body = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": user()}
    with SimServer(clock=clock, rate_limits=limits) as sim:
        assert raw_post(sim.base_url, "/v1/messages", body)[0] == 200
        assert raw_post(sim.base_url, "/v1/messages", body)[0] == 200
        status, headers, _ = raw_post(sim.base_url, "/v1/messages", body)
        assert status == 429
        assert int(headers["retry-after-ms"]) == pytest.approx(500, abs=1)  # 30 scenario seconds / 60
        wall.now += 0.5  # half a wall second is the half scenario minute one request needs
        assert raw_post(sim.base_url, "/v1/messages", body)[0] == 200
