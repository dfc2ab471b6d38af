"""Providers for an application that has not configured OpenTelemetry, from the standard OTEL_* variables."""

from __future__ import annotations

import logging
import os
import urllib.parse
from typing import Any

from opentelemetry import metrics, trace

from ._endpoint_guard import Endpoint, GuardedMetricExporter, GuardedSpanExporter, endpoint_for

__all__ = ["ensure_providers"]

log = logging.getLogger("otel_claude")


def _tracing_configured() -> bool:
    # The API hands out a ProxyTracerProvider until someone sets a real one.
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def _metrics_configured() -> bool:
    from opentelemetry.metrics import _internal as metrics_internal

    return not isinstance(metrics.get_meter_provider(), metrics_internal._ProxyMeterProvider)


def _exporters() -> list[str]:
    return [name.strip() for name in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if name.strip()]


def _otlp_protocol(signal: str) -> str:
    return os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )


def _endpoint(signal: str) -> Endpoint:
    """Where the OTLP exporter of `signal` (TRACES, METRICS) sends, as the exporters read the variables."""
    grpc = _otlp_protocol(signal) == "grpc"
    for setting in (f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        value = os.environ.get(setting, "").strip()
        if value:
            break
    else:
        setting, value = "the OTLP default", "http://localhost:4317" if grpc else "http://localhost:4318"
    parts = urllib.parse.urlsplit(value if "://" in value else f"http://{value}")
    return endpoint_for(f"{parts.scheme}://{parts.netloc}", setting)


def _span_exporter(name: str) -> Any:
    if name == "otlp":
        if _otlp_protocol("TRACES") == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        return GuardedSpanExporter(OTLPSpanExporter(), _endpoint("TRACES"))
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    log.warning("otel_claude: unsupported OTEL_TRACES_EXPORTER entry %r ignored", name)
    return None


def _metric_reader() -> Any:
    exporter_name = os.environ.get("OTEL_METRICS_EXPORTER", "otlp").strip()
    if exporter_name == "none":
        return None
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    if exporter_name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return PeriodicExportingMetricReader(ConsoleMetricExporter())
    if _otlp_protocol("METRICS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    return PeriodicExportingMetricReader(GuardedMetricExporter(OTLPMetricExporter(), _endpoint("METRICS")))


def ensure_providers() -> None:
    """Install SDK providers exporting over OTLP, unless the application (or a distro) already set its own.

    Honours OTEL_SDK_DISABLED, OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES (through Resource.create),
    OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER (otlp, console, none) and the OTLP endpoint/protocol variables.
    """
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create()
    if not _tracing_configured():
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=resource)
        for name in _exporters():
            exporter = None if name == "none" else _span_exporter(name)
            if exporter is not None:
                provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    if not _metrics_configured():
        from opentelemetry.sdk.metrics import MeterProvider

        reader = _metric_reader()
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader] if reader else []))
