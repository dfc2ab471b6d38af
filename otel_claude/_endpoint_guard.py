"""OTLP exporters that give up at once on an endpoint that is not there, with one warning instead of a stream.

`instrument()` in a script with no Collector running used to print a "Transient error ... localhost:4318" line per
retry and hold the process at exit for the exporters' retries (about 9 s for spans, as long again for metrics).
OpenTelemetry's convention stays (OTLP to localhost when the user asked for OTLP); what changes:

- before an export to an endpoint not known to answer, a TCP connect (bounded by `_PROBE_TIMEOUT_S`) tells a
  refused or unroutable endpoint at once: the batch is dropped without the exporter's retries;
- an export that got no answer (refused, timed out) marks the endpoint down for a back-off (5 s, doubling to
  5 min), during which batches are dropped at once, so a stalled endpoint costs one export timeout, not one per
  batch and signal; an error status (a traces-only backend answering 404 to metrics) is told once and stops
  nothing else;
- the exporter's own retry and failure log lines are held back while it exports for us, and one warning per
  endpoint says what is wrong and how to fix it; one info line says when it answers again.

Only providers otel-claude sets up (`_setup.ensure_providers`) use these: an application's own exporters are
never wrapped.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["GuardedMetricExporter", "GuardedSpanExporter", "endpoint_for"]

log = logging.getLogger("otel_claude")

_PROBE_TIMEOUT_S = 1.0
_FIRST_BACKOFF_S = 5.0
_MAX_BACKOFF_S = 300.0
# Loggers of the OTLP exporters whose per-retry lines the one warning replaces (only while they export for us).
_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
)


class _Exporting(threading.local):
    active = False
    status: int | None = None  # an HTTP status the endpoint answered a failed export with


_exporting = _Exporting()


class _HoldBackWhileGuarded(logging.Filter):
    """Holds back the exporter's lines while it exports for us, noting an HTTP status a failure line carries (the
    endpoint answered: it is there, it refused this signal)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _exporting.active:
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        status = next((a for a in args if isinstance(a, int) and not isinstance(a, bool) and 400 <= a <= 599), None)
        if status is not None:
            _exporting.status = status
        return False


_filter_installed = False
_filter_lock = threading.Lock()


def _install_filter() -> None:
    global _filter_installed
    with _filter_lock:
        if _filter_installed:
            return
        for name in _EXPORTER_LOGGERS:
            logging.getLogger(name).addFilter(_HoldBackWhileGuarded())
        _filter_installed = True


class Endpoint:
    """What is known of one OTLP endpoint: reachable lately or down until some time. Shared by the exporters that
    send to it, thread-safe."""

    def __init__(self, url: str, setting: str) -> None:
        self.url = url
        self.setting = setting  # the variable that chose it, for the warning
        parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        self._address: tuple[str, int] | None = None
        try:
            if parts.hostname:
                self._address = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        except ValueError:  # a port that is not a number: leave the exporter to report it
            self._address = None
        self._lock = threading.Lock()
        self._answered = False  # the last export succeeded
        self._down_until = 0.0
        self._failures = 0
        self._warned = False
        self._refusals: set[tuple[str, int]] = set()  # (signal, HTTP status) already told

    def _connects(self) -> str | None:
        """None when a TCP connection opens, else why not."""
        if self._address is None:
            return None
        try:
            with socket.create_connection(self._address, timeout=_PROBE_TIMEOUT_S):
                return None
        except OSError as err:
            return err.strerror or type(err).__name__

    def usable(self) -> bool:
        """Whether to try an export now (probing the endpoint unless the last export went through)."""
        with self._lock:
            if self._answered:
                return True
            if time.monotonic() < self._down_until:
                return False
        problem = self._connects()
        if problem is not None:
            self.failed(problem)
            return False
        return True

    def failed(self, problem: str) -> None:
        with self._lock:
            self._answered = False
            self._failures += 1
            backoff = min(_MAX_BACKOFF_S, _FIRST_BACKOFF_S * 2 ** (self._failures - 1))
            self._down_until = time.monotonic() + backoff
            warn, self._warned = not self._warned, True
        if warn:
            log.warning(
                "otel_claude: cannot export to the OTLP endpoint %s (%s; from %s): spans and metrics are dropped "
                "while it does not answer, and it is tried again now and then. Start a Collector there (see "
                "docs/observability.md), point OTEL_EXPORTER_OTLP_ENDPOINT at one, or switch export off with "
                "OTEL_TRACES_EXPORTER=none and OTEL_METRICS_EXPORTER=none.",
                self.url, problem, self.setting,
            )

    def refused(self, signal: str, status: int) -> None:
        """The endpoint answered an export of `signal` with an error status: it is up, the other signal may go on."""
        with self._lock:
            self._answered = True
            new = (signal, status) not in self._refusals
            self._refusals.add((signal, status))
        if new:
            log.warning("otel_claude: the OTLP endpoint %s answers HTTP %d to %s: they are dropped (a backend that "
                        "takes traces only, such as Phoenix, needs OTEL_METRICS_EXPORTER=none).",
                        self.url, status, signal)

    def succeeded(self) -> None:
        with self._lock:
            recovered = self._failures > 0
            self._answered, self._failures, self._down_until = True, 0, 0.0
            if recovered:
                self._warned = False
        if recovered:
            log.info("otel_claude: the OTLP endpoint %s answers again", self.url)


_endpoints: dict[str, Endpoint] = {}
_endpoints_lock = threading.Lock()


def endpoint_for(url: str, setting: str) -> Endpoint:
    """The shared state of the endpoint at `url` (one per URL, so the span and metric exporters agree)."""
    with _endpoints_lock:
        found = _endpoints.get(url)
        if found is None:
            found = _endpoints[url] = Endpoint(url, setting)
        return found


def _guarded_export(endpoint: Endpoint, signal: str, export: Any, batch: Any, success: Any) -> bool:
    """Run `export(batch)` if the endpoint may answer; True when it reported `success`."""
    if not endpoint.usable():
        return False
    _exporting.active, _exporting.status = True, None
    try:
        ok = export(batch) == success
    except Exception as err:  # an exporter that raises instead of reporting
        endpoint.failed(type(err).__name__)
        return False
    finally:
        _exporting.active = False
    if ok:
        endpoint.succeeded()
    elif _exporting.status is not None:
        endpoint.refused(signal, _exporting.status)
    else:
        endpoint.failed("no answer")
    return ok


class GuardedSpanExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, endpoint: Endpoint) -> None:
        _install_filter()
        self._inner = inner
        self._endpoint = endpoint

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ok = _guarded_export(self._endpoint, "spans", self._inner.export, spans, SpanExportResult.SUCCESS)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self._inner.force_flush(timeout_millis))


class GuardedMetricExporter(MetricExporter):
    def __init__(self, inner: MetricExporter, endpoint: Endpoint) -> None:
        _install_filter()
        # The metric reader reads the exporter's temporality and aggregation preferences from these attributes.
        super().__init__(preferred_temporality=getattr(inner, "_preferred_temporality", None),
                         preferred_aggregation=getattr(inner, "_preferred_aggregation", None))
        self._inner = inner
        self._endpoint = endpoint

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        ok = _guarded_export(self._endpoint, "metrics",
                             lambda data: self._inner.export(data, timeout_millis=timeout_millis, **kwargs),
                             metrics_data, MetricExportResult.SUCCESS)
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return bool(self._inner.force_flush(timeout_millis=timeout_millis))

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)
