"""An OTLP/HTTP endpoint on loopback that keeps what it receives: the Collector's receiving half, for tests.

No Collector binary runs here. The examples export with the real OTLP exporters over real HTTP; this server
decodes the protobuf requests exactly as the Collector's `otlp` receiver would and lets a test wait for them.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_ROUTES: dict[str, tuple[type, type]] = {
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse),
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse),
}


def _value(any_value: dict[str, Any]) -> Any:
    ((kind, value),) = any_value.items()
    if kind == "intValue":
        return int(value)
    if kind == "arrayValue":
        return [_value(v) for v in value.get("values", [])]
    return value


def attributes(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {item["key"]: _value(item.get("value", {})) for item in items}


class OTLPSink:
    """Start with `with OTLPSink() as sink:`; point exporters at `sink.endpoint`."""

    def __init__(self) -> None:
        self.requests: dict[str, list[dict[str, Any]]] = {path: [] for path in _ROUTES}
        self._changed = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                route = _ROUTES.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                request = route[0].FromString(body)
                with sink._changed:
                    sink.requests[self.path].append(MessageToDict(request))
                    sink._changed.notify_all()
                reply = route[1]().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> OTLPSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def spans(self) -> list[dict[str, Any]]:
        """Every span received, flattened: name, kind, attributes, scope, resource attributes, links."""
        with self._changed:
            requests = list(self.requests["/v1/traces"])
        out = []
        for request in requests:
            for resource_spans in request.get("resourceSpans", []):
                resource = attributes(resource_spans.get("resource", {}).get("attributes", []))
                for scope_spans in resource_spans.get("scopeSpans", []):
                    scope = scope_spans.get("scope", {}).get("name", "")
                    for span in scope_spans.get("spans", []):
                        out.append(
                            {
                                "name": span["name"],
                                "kind": span.get("kind"),
                                "scope": scope,
                                "resource": resource,
                                "attributes": attributes(span.get("attributes", [])),
                                "links": span.get("links", []),
                                "status": span.get("status", {}),
                            }
                        )
        return out

    def metric_names(self) -> set[str]:
        with self._changed:
            requests = list(self.requests["/v1/metrics"])
        return {
            metric["name"]
            for request in requests
            for resource_metrics in request.get("resourceMetrics", [])
            for scope_metrics in resource_metrics.get("scopeMetrics", [])
            for metric in scope_metrics.get("metrics", [])
        }

    def wait_for(self, predicate: Callable[[OTLPSink], bool], timeout: float = 30.0) -> bool:
        """Block until `predicate(self)` holds after some request arrived, or `timeout` passes."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)
