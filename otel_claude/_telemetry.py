"""Tracer and metric instruments, created once per `instrument()` from the providers in use."""

from __future__ import annotations

import inspect
import threading
import weakref
from collections import deque
from collections.abc import Iterable
from typing import Any, ClassVar, NamedTuple

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation

from . import semconv as sc
from ._evaluation_spend import EvaluationSpend
from ._feedback import CallIndex
from ._forks import on_fork_in_child
from ._forks import register as register_after_fork
from ._headroom import Headroom
from ._limiter import KINDS, LimiterState
from ._policy_metrics import PolicyMetrics
from ._quality import QualityTotals
from ._version import __version__

__all__ = ["Telemetry"]

SCOPE = "otel_claude"
# Bucket advice from the GenAI semantic conventions.
_DURATION_BUCKETS = [0.01 * 2**i for i in range(14)]  # 0.01 ... 81.92 s
_TOKEN_BUCKETS = [4**i for i in range(14)]  # 1 ... 67108864


Labels = tuple[tuple[str, Any], ...]
# Chat-call outcome labels beside (model, task): finish reason, error type, policy version (None: not set).
Outcome = tuple[str, "str | None", "str | None"]
_CACHE_KINDS = ("read", "write", "uncached")


class CallTotals:
    """The counters of chat calls, summed in-process and reported by observable counters at collection.

    A synchronous SDK counter costs 20-30 us per add (attribute validation and hashing, locks, per-reader
    storage); a call adds here under one lock, keyed by plain tuples, and label dicts are built only when metrics
    are collected.
    """

    def __init__(self) -> None:
        self._after_fork_in_child()

    def _after_fork_in_child(self) -> None:
        """Start from zero with a fresh lock: each process reports its own calls (cumulative per process, as
        Prometheus and the Collector expect from separate workers), and a lock held at the fork stays held."""
        self._lock = threading.Lock()
        self._cost: dict[Labels, float] = {}
        self._calls: dict[tuple[Labels, Outcome], int] = {}
        self._cache: dict[tuple[Labels, int], int] = {}
        self._truncations: dict[tuple[Labels, str], int] = {}

    def add(self, short: Labels, cost: float | None, outcome: Outcome, cache: tuple[int, int, int] | None) -> None:
        """`short`: the (model, task) labels; `cache`: read, write and uncached input tokens, when known."""
        key = (short, outcome)
        with self._lock:
            self._calls[key] = self._calls.get(key, 0) + 1
            if cost is not None:
                self._cost[short] = self._cost.get(short, 0.0) + cost
            if cache is not None:
                for kind, tokens in enumerate(cache):
                    if tokens:
                        cache_key = (short, kind)
                        self._cache[cache_key] = self._cache.get(cache_key, 0) + tokens

    def cost_of_task(self, task: str | None) -> float:
        """The application's spend on `task` so far (all models); the evaluation budget is a share of it."""
        with self._lock:
            items = list(self._cost.items())
        if task is None:
            return sum(value for short, value in items if all(key != sc.TASK for key, _ in short))
        return sum(value for short, value in items if (sc.TASK, task) in short)

    def add_truncation(self, short: Labels, version: str) -> None:
        """A call the policy's lowered max_tokens cut short (rare: outside the per-call path's common case)."""
        key = (short, version)
        with self._lock:
            self._truncations[key] = self._truncations.get(key, 0) + 1

    def observe_truncations(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._truncations.items())
        return [Observation(value, {**dict(short), sc.POLICY_VERSION: version}) for (short, version), value in items]

    def observe_cost(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._cost.items())
        return [Observation(value, dict(short)) for short, value in items]

    def observe_calls(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._calls.items())
        observations = []
        for (short, (reason, error_type, version)), value in items:
            labels = {**dict(short), sc.FINISH_REASON_LABEL: reason}
            if error_type is not None:
                labels[sc.ERROR_TYPE] = error_type
            if version is not None:
                labels[sc.POLICY_VERSION] = version
            observations.append(Observation(value, labels))
        return observations

    def observe_cache(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._cache.items())
        return [Observation(value, {**dict(short), sc.CACHE_KIND_LABEL: _CACHE_KINDS[kind]})
                for (short, kind), value in items]


_OUTCOMES = ("immediate", "waited", "timeout_proceeded", "timeout_failed")


class LimiterMetrics:
    """The admission limiters' state, read from every limiter of the watched policies when metrics are collected;
    nothing on the call path."""

    def __init__(self, meter: Any) -> None:
        self._admissions: weakref.WeakSet[Any] = weakref.WeakSet()
        meter.create_observable_gauge(sc.METRIC_LIMITER_IN_FLIGHT, [self._in_flight], unit="{call}",
                                      description="Calls admitted by a policy limit and not yet ended")
        meter.create_observable_gauge(sc.METRIC_LIMITER_QUEUED, [self._queued], unit="{call}",
                                      description="Calls waiting for admission")
        meter.create_observable_gauge(sc.METRIC_LIMITER_CONCURRENCY, [self._concurrency], unit="{call}",
                                      description="Concurrency the limiter allows now (adaptive limits move it)")
        meter.create_observable_gauge(sc.METRIC_LIMITER_RATE, [self._rate], unit="{unit}/min",
                                      description="Per-minute rate the limiter paces, by kind")
        meter.create_observable_counter(sc.METRIC_LIMITER_ADMISSIONS, [self._outcomes], unit="{call}",
                                        description="Admissions by outcome")
        meter.create_observable_counter(sc.METRIC_LIMITER_WAIT, [self._wait], unit="s",
                                        description="Total time calls waited for admission")
        meter.create_observable_counter(sc.METRIC_LIMITER_CONGESTION, [self._congestion], unit="{response}",
                                        description="429 and 529 responses seen by limited calls, retried ones too")

    def watch(self, admission: Any) -> None:
        self._admissions.add(admission)

    def _states(self) -> list[tuple[dict[str, str], LimiterState]]:
        return [({sc.LIMIT_LABEL: name}, state) for admission in list(self._admissions)
                for name, state in admission.states()]

    def _in_flight(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(state.in_flight, labels) for labels, state in self._states()]

    def _queued(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(state.queued, labels) for labels, state in self._states()]

    def _concurrency(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(state.concurrency, labels) for labels, state in self._states()
                if state.concurrency is not None]

    def _rate(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(rate, {**labels, sc.LIMIT_KIND_LABEL: kind}) for labels, state in self._states()
                for kind, rate in zip(KINDS, state.per_minute, strict=True) if rate is not None]

    def _outcomes(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(count, {**labels, sc.ADMISSION_OUTCOME_LABEL: outcome})
                for labels, state in self._states()
                for outcome, count in zip(_OUTCOMES, state[4:8], strict=True)]

    def _wait(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(state.wait_seconds, labels) for labels, state in self._states()]

    def _congestion(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(count, {**labels, sc.ERROR_TYPE: error}) for labels, state in self._states()
                for error, count in (("rate_limit_error", state.rate_limited), ("overloaded_error", state.overloaded))]


class LabelSet(NamedTuple):
    """The labels of one (operation, provider, model, task, error) combination, built once and reused, with the
    histograms its records go to (the naming in force decides which)."""

    histograms: dict[str, Any]
    input_tokens: dict[str, Any]  # histograms, plus gen_ai.token.type=input where one histogram has both
    output_tokens: dict[str, Any]
    short: Labels  # (model, task): the counters' key
    duration: Any  # Histogram
    input_histogram: Any
    output_histogram: Any


# A call's histogram measurements: (duration s, time to first chunk s or None, input tokens or None,
# output tokens or None, labels). Recorded in batches, see Telemetry.queue.
Pending = tuple[float, "float | None", "int | None", "int | None", LabelSet]
_FLUSH_AT = 1024
_MAX_LABEL_SETS = 10_000  # a memo, not a limit: combinations past it are built per call
_RECORD_TAKES_CONTEXT = "context" in inspect.signature(metrics.Histogram.record).parameters
# A context whose span is the invalid span: the SDK's trace-based exemplar filter then takes no exemplar. (An empty
# Context would not do: it is falsy, and the SDK falls back to whatever context is current.)
_NO_EXEMPLAR = {"context": trace.set_span_in_context(trace.INVALID_SPAN, Context())}


def _weakly_referable(obj: Any) -> bool:
    try:
        weakref.ref(obj)
    except TypeError:
        return False
    return True


class Telemetry:
    """Everything a call records into, bundled so a call needs a single reference.

    One per (tracer provider, meter provider): instrument/uninstrument cycles reuse it, so counters keep their
    totals and no second set of callbacks is registered with the meter provider.
    """

    # tracer provider -> meter provider -> Telemetry, held weakly, so a process that builds providers as it goes
    # (a test suite, a service per tenant) gets them back. None (the global providers) cannot be held weakly.
    _cache: ClassVar[weakref.WeakKeyDictionary[Any, weakref.WeakKeyDictionary[Any, dict[sc.Naming, Telemetry]]]] = (
        weakref.WeakKeyDictionary()
    )
    _global: ClassVar[dict[tuple[Any, Any, sc.Naming], Telemetry]] = {}
    _cache_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def for_providers(
        cls, tracer_provider: Any = None, meter_provider: Any = None, naming: sc.Naming | None = None
    ) -> Telemetry:
        naming = naming or sc.Naming.from_environment()
        with cls._cache_lock:
            if _weakly_referable(tracer_provider) and _weakly_referable(meter_provider):
                by_meter = cls._cache.get(tracer_provider)
                if by_meter is None:
                    by_meter = cls._cache[tracer_provider] = weakref.WeakKeyDictionary()
                by_naming = by_meter.get(meter_provider)
                if by_naming is None:
                    by_naming = by_meter[meter_provider] = {}
                telemetry = by_naming.get(naming)
                if telemetry is None:
                    telemetry = by_naming[naming] = cls(tracer_provider, meter_provider, naming)
            else:
                key = (tracer_provider, meter_provider, naming)
                telemetry = cls._global.get(key)
                if telemetry is None:
                    telemetry = cls._global[key] = cls(tracer_provider, meter_provider, naming)
            return telemetry

    def __init__(
        self, tracer_provider: Any = None, meter_provider: Any = None, naming: sc.Naming | None = None
    ) -> None:
        self.naming = naming = naming or sc.Naming()
        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
        self.calls_by_response_id = CallIndex()
        meter = self._meter = metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
        # Created here, not on first use: a call path that created instruments could race another thread's.
        self._histograms: dict[str, Any] = {}
        for operation in {naming.duration_metric(sc.CHAT_OPERATION), naming.duration_metric("count_tokens")}:
            self._histogram(operation, "s", _DURATION_BUCKETS)
        for name in ((sc.METRIC_INFERENCE_INPUT_TOKENS, sc.METRIC_INFERENCE_OUTPUT_TOKENS) if naming.latest
                     else (sc.METRIC_TOKEN_USAGE,)):
            self._histogram(name, "{token}", _TOKEN_BUCKETS)
        self.ttft = self._histogram(naming.time_to_first_chunk_metric, "s", _DURATION_BUCKETS,
                                    "Time from the start of the call to the first content chunk of a stream")
        # Histogram records wait here and are recorded in a batch when metrics are collected (or every _FLUSH_AT
        # calls): a record made right after the SDK's HTTP work runs with cold caches and costs twice as much, and
        # none of it then sits on the caller's path. deque appends and pops are thread-safe without a lock.
        self._pending: deque[Pending] = deque()
        self._labels: dict[tuple[Any, ...], LabelSet] = {}
        self.totals = CallTotals()
        meter.create_observable_counter(
            sc.METRIC_COST, [self.totals.observe_cost], unit="USD", description="Cost of Anthropic API calls"
        )
        meter.create_observable_counter(
            sc.METRIC_CALLS,
            [self._flush_then_observe_calls],
            unit="{call}",
            description="Calls by finish reason, error type and policy version",
        )
        self.evaluation = EvaluationSpend()
        meter.create_observable_counter(
            sc.METRIC_EVALUATION_COST, [self.evaluation.observe_cost], unit="USD",
            description="Cost of the calls paired evaluation made (shadow copies and judges)",
        )
        meter.create_observable_counter(
            sc.METRIC_EVALUATION_SKIPPED, [self.evaluation.observe_skipped], unit="{pair}",
            description="Calls sampled for paired evaluation that produced no verdict, by reason",
        )
        meter.create_observable_counter(
            sc.METRIC_CACHE_TOKENS,
            [self.totals.observe_cache],
            unit="{token}",
            description="Input tokens by cache outcome",
        )
        meter.create_observable_counter(
            sc.METRIC_POLICY_TRUNCATIONS,
            [self.totals.observe_truncations],
            unit="{call}",
            description="Answers cut short by a max_tokens the policy lowered",
        )
        self._limiters = LimiterMetrics(meter)
        self.quality = QualityTotals()
        meter.create_observable_counter(sc.METRIC_FEEDBACK_SCORES, [self.quality.observe_score_counts],
                                        unit="{score}", description="Feedback scores given, by task and model")
        meter.create_observable_counter(sc.METRIC_FEEDBACK_SCORE_SUM, [self.quality.observe_score_sums],
                                        unit="{score}", description="Sum of the feedback scores given (divided by "
                                        "otel_claude.feedback.scores: the mean score)")
        meter.create_observable_counter(sc.METRIC_VERDICTS, [self.quality.observe_verdicts], unit="{pair}",
                                        description="Paired-evaluation verdicts, by task, incumbent and candidate "
                                        "model, and label")
        self.headroom = Headroom()
        meter.create_observable_gauge(sc.METRIC_RATELIMIT_LIMIT, [self.headroom.observe_limits], unit="{unit}",
                                      description="The API's per-minute rate limit, latest reading per model")
        meter.create_observable_gauge(sc.METRIC_RATELIMIT_REMAINING, [self.headroom.observe_remaining],
                                      unit="{unit}", description="What the API says is left of the per-minute "
                                      "rate limit, latest reading per model")
        self.policies = PolicyMetrics()
        meter.create_observable_gauge(sc.METRIC_POLICY_LOADED, [self.policies.observe_loaded], unit="s",
                                      description="Unix time the policy version in force came into force")
        meter.create_observable_gauge(sc.METRIC_POLICY_PREDICTED_COST, [self.policies.observe_predicted],
                                      unit="USD", description="Cost per call the tuner predicted for a task, with "
                                      "the callers' settings (before) and with the policy (after)")
        register_after_fork(self)

    def watch_admission(self, admission: Any) -> None:
        """Report the limiters of a policy's `limits` (held weakly: a dropped policy engine stops reporting)."""
        self._limiters.watch(admission)

    def _after_fork_in_child(self) -> None:
        # The parent's queued histogram records are the parent's to record: the child would count them twice.
        self._pending.clear()
        self.totals._after_fork_in_child()
        self.quality._after_fork_in_child()
        self.headroom._after_fork_in_child()
        self.policies._after_fork_in_child()
        self.calls_by_response_id._after_fork_in_child()

    _DESCRIPTIONS: ClassVar[dict[str, str]] = {
        sc.METRIC_OPERATION_DURATION: "Duration of a GenAI operation, retries and stream reading included",
        sc.METRIC_INFERENCE_DURATION: "Duration of an inference call, retries and stream reading included",
        sc.METRIC_TOKEN_USAGE: "Input and output tokens used per operation",
        sc.METRIC_INFERENCE_INPUT_TOKENS: "Input tokens (cache reads and writes included) per inference call",
        sc.METRIC_INFERENCE_OUTPUT_TOKENS: "Output tokens per inference call",
    }

    def _histogram(self, name: str, unit: str = "", buckets: list[float] | list[int] | None = None,
                   description: str = "") -> Any:
        """The histogram of that name (all are created in __init__)."""
        found = self._histograms.get(name)
        if found is None:
            found = self._histograms[name] = self._meter.create_histogram(
                name, unit=unit, description=description or self._DESCRIPTIONS.get(name, ""),
                explicit_bucket_boundaries_advisory=buckets,
            )
        return found

    def labels(self, operation: str, provider: Any, model: Any, task: Any, error_type: str | None) -> LabelSet:
        """Histogram labels (plain and per token type) and the counters' (model, task) key, built once each.

        Few labels on purpose: the SDK validates and hashes every label of every record; response model and server
        address stay on the span, where the tuner and trace views read them.
        """
        key = (operation, provider, model, task, error_type)
        found = self._labels.get(key)
        if found is None:
            labels = {sc.GEN_AI_OPERATION_NAME: operation, sc.GEN_AI_PROVIDER_NAME: provider}
            if model is not None:
                labels[sc.GEN_AI_REQUEST_MODEL] = model
            if task is not None:
                labels[sc.TASK] = task
            if error_type is not None:
                labels[sc.ERROR_TYPE] = error_type
            short = tuple((k, labels[k]) for k in (sc.GEN_AI_REQUEST_MODEL, sc.TASK) if k in labels)
            duration = self._histograms[self.naming.duration_metric(operation)]
            if self.naming.latest:
                found = LabelSet(labels, labels, labels, short, duration,
                                 self._histograms[sc.METRIC_INFERENCE_INPUT_TOKENS],
                                 self._histograms[sc.METRIC_INFERENCE_OUTPUT_TOKENS])
            else:
                tokens = self._histograms[sc.METRIC_TOKEN_USAGE]
                found = LabelSet(labels, {**labels, sc.GEN_AI_TOKEN_TYPE: "input"},
                                 {**labels, sc.GEN_AI_TOKEN_TYPE: "output"}, short, duration, tokens, tokens)
            if len(self._labels) < _MAX_LABEL_SETS:
                self._labels[key] = found
        return found

    def queue(self, measurement: Pending) -> None:
        self._pending.append(measurement)
        if len(self._pending) >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        pending = self._pending
        # Batched records run outside the call's context: an exemplar taken now would point at whatever trace is
        # current, so records carry a context without a valid span (no exemplar) where the API accepts one.
        extra = _NO_EXEMPLAR if _RECORD_TAKES_CONTEXT else {}
        ttft = self.ttft.record
        while True:
            try:
                seconds, first_chunk, tokens_in, tokens_out, labels = pending.popleft()
            except IndexError:
                return
            labels.duration.record(seconds, labels.histograms, **extra)
            if first_chunk is not None:
                ttft(first_chunk, labels.histograms, **extra)
            if tokens_in is not None:
                labels.input_histogram.record(tokens_in, labels.input_tokens, **extra)
            if tokens_out is not None:
                labels.output_histogram.record(tokens_out, labels.output_tokens, **extra)

    def _flush_then_observe_calls(self, options: CallbackOptions) -> Iterable[Observation]:
        # The SDK runs observable callbacks before it reads its storage, so histograms recorded here are in
        # this very collection.
        self.flush()
        return self.totals.observe_calls(options)


def _new_cache_lock() -> None:
    Telemetry._cache_lock = threading.Lock()


on_fork_in_child(_new_cache_lock)
