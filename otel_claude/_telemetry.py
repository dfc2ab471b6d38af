"""Tracer and metric instruments, created once per `instrument()` from the providers in use."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation

from ._feedback import CallIndex
from ._version import __version__

__all__ = ["Telemetry"]

SCOPE = "otel_claude"
# Bucket advice from the GenAI semantic conventions.
_DURATION_BUCKETS = [0.01 * 2**i for i in range(14)]  # 0.01 ... 81.92 s
_TOKEN_BUCKETS = [4**i for i in range(14)]  # 1 ... 67108864


class Sums:
    """Cumulative sums per attribute set, reported by an observable counter when metrics are collected.

    A synchronous SDK counter costs 20-30 us per add (attribute hashing, locks, per-reader storage); summing here
    costs about 1 us and the SDK sees the totals once per export interval instead of once per call.
    """

    def __init__(self) -> None:
        self._values: dict[tuple[tuple[str, Any], ...], float] = {}
        self._lock = threading.Lock()

    def add(self, value: float, labels: tuple[tuple[str, Any], ...]) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0) + value

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._values.items())
        return [Observation(value, dict(labels)) for labels, value in items]


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
        self.cost = Sums()
        self.calls = Sums()
        self.cache_tokens = Sums()
        meter.create_observable_counter(
            "otel_claude.cost", [self.cost.observe], unit="USD", description="Cost of Anthropic API calls"
        )
        meter.create_observable_counter(
            "otel_claude.calls",
            [self.calls.observe],
            unit="{call}",
            description="Calls by finish reason, error type and policy version",
        )
        meter.create_observable_counter(
            "otel_claude.cache.tokens",
            [self.cache_tokens.observe],
            unit="{token}",
            description="Input tokens by cache outcome",
        )
