"""Fixtures for running the examples as their users would: as separate processes, against the simulator, with
their telemetry sent over OTLP/HTTP to a loopback sink."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_sim import SimServer
from claude_sim.collector import CollectorStub

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sim_url() -> Iterator[str]:
    with SimServer(latency_scale=0.0) as sim:
        yield sim.base_url


@pytest.fixture
def otlp_sink() -> Iterator[CollectorStub]:
    with CollectorStub() as sink:
        yield sink


@pytest.fixture
def example_env(sim_url: str, otlp_sink: CollectorStub) -> dict[str, str]:
    """The environment a user would set: the API address and key, the Collector address, a service name."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "ANTHROPIC_"))}
    env.update(
        ANTHROPIC_BASE_URL=sim_url,
        ANTHROPIC_API_KEY="sk-test",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_sink.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    return env
