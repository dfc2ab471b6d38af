"""An OTLP/HTTP endpoint on loopback standing in for a Collector's receiving half, healthy or faulty.

No Collector binary runs on a test machine. Real OTLP exporters send real HTTP to this server, which keeps each
request as the Collector's `otlp` receiver would read it (protobuf, gzip undone) and answers after `delay` seconds:
0 is a healthy Collector, a positive delay a slow one, `None` a stuck one that holds every request until
`release()` (or the end of the `with` block). Tests wait on what arrived (`wait_for`); benchmarks count it.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TRACES = "/v1/traces"
METRICS = "/v1/metrics"


class CollectorStub:
    """`with CollectorStub() as collector:`; point exporters at `collector.endpoint` (or `.traces_endpoint`)."""

    def __init__(self, delay: float | None = 0.0) -> None:
        if delay is not None and delay < 0:
            raise ValueError(f"delay must be >= 0 seconds or None (hold until released), not {delay}")
        self.delay = delay
        self.bodies: dict[str, list[bytes]] = {TRACES: [], METRICS: []}
        self.answered = 0  # requests answered so far (held ones are received but not answered)
        self._released = threading.Event()
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.traces_endpoint = self.endpoint + TRACES

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.path not in collector.bodies:
                    self.send_error(404)
                    return
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                with collector._changed:
                    collector.bodies[self.path].append(body)
                    collector._changed.notify_all()
                if collector.delay != 0:
                    collector._released.wait(collector.delay)
                # An empty Export*ServiceResponse serializes to zero bytes: a full success.
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()
                with collector._changed:
                    collector.answered += 1
                    collector._changed.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> CollectorStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def release(self) -> None:
        """Answer every request held now or later (a stuck or slow Collector recovers)."""
        self._released.set()

    @property
    def requests(self) -> int:
        with self._changed:
            return sum(len(bodies) for bodies in self.bodies.values())

    def wait_for(self, predicate: Callable[[CollectorStub], bool], timeout: float = 30.0) -> bool:
        """Block until `predicate(self)` holds (checked as requests arrive), or `timeout` passes."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    def spans(self) -> list[dict[str, Any]]:
        """Every span received, flattened: name, kind, scope, resource and span attributes, links, status."""
        out = []
        for request in self._decoded(TRACES):
            for resource_spans in request.get("resourceSpans", []):
                resource = attributes(resource_spans.get("resource", {}).get("attributes", []))
                for scope_spans in resource_spans.get("scopeSpans", []):
                    scope = scope_spans.get("scope", {}).get("name", "")
                    out.extend({
                        "name": span["name"],
                        "kind": span.get("kind"),
                        "scope": scope,
                        "resource": resource,
                        "attributes": attributes(span.get("attributes", [])),
                        "links": span.get("links", []),
                        "status": span.get("status", {}),
                    } for span in scope_spans.get("spans", []))
        return out

    def metric_names(self) -> set[str]:
        return {
            metric["name"]
            for request in self._decoded(METRICS)
            for resource_metrics in request.get("resourceMetrics", [])
            for scope_metrics in resource_metrics.get("scopeMetrics", [])
            for metric in scope_metrics.get("metrics", [])
        }

    def _decoded(self, path: str) -> list[dict[str, Any]]:
        # Imported here: only tests that read what arrived need protobuf's JSON mapping.
        from google.protobuf.json_format import MessageToDict
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        message = ExportTraceServiceRequest if path == TRACES else ExportMetricsServiceRequest
        with self._changed:
            bodies = list(self.bodies[path])
        return [MessageToDict(message.FromString(body)) for body in bodies]


def _value(any_value: dict[str, Any]) -> Any:
    if not any_value:
        return None
    ((kind, value),) = any_value.items()
    if kind == "intValue":
        return int(value)
    if kind == "arrayValue":
        return [_value(v) for v in value.get("values", [])]
    return value


def attributes(items: list[dict[str, Any]]) -> dict[str, Any]:
    """OTLP JSON key/value pairs as a plain dict (ints as ints, arrays as lists)."""
    return {item["key"]: _value(item.get("value", {})) for item in items}
