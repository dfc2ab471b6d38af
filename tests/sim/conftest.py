"""Fixtures for the simulator tests: a running SimServer and SDK clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest

from claude_sim import SimServer


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(seed=1) as server:
        yield server


@pytest.fixture
def client(sim: SimServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sim.base_url, api_key="test", max_retries=0)
