"""Tracer and metric instruments, created once per `instrument()` from the providers in use."""

from __future__ import annotations

from typing import Any

from opentelemetry import metrics, trace

from ._feedback import CallIndex
from ._version import __version__

__all__ = ["Telemetry"]

SCOPE = "otel_claude"
# Bucket advice from the GenAI semantic conventions.
_DURATION_BUCKETS = [0.01 * 2**i for i in range(14)]  # 0.01 ... 81.92 s
_TOKEN_BUCKETS = [4**i for i in range(14)]  # 1 ... 67108864


class Telemetry:
    """Everything a call records into, bundled so a call needs a single reference."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
        self.calls_by_response_id = CallIndex()
        meter = metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="Duration of a GenAI operation, retries and stream reading included",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Input and output tokens used per operation",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self.ttft = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time from the start of the call to the first content chunk of a stream",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.cost = meter.create_counter("otel_claude.cost", unit="USD", description="Cost of Anthropic API calls")
        self.calls = meter.create_counter(
            "otel_claude.calls", unit="{call}", description="Calls by finish reason, error type and policy version"
        )
        self.cache_tokens = meter.create_counter(
            "otel_claude.cache.tokens", unit="{token}", description="Input tokens by cache outcome"
        )
