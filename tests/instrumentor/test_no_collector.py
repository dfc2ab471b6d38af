"""`instrument()` with no Collector: the script exits promptly, with one warning and not a line per retry.

Each case runs a real script in a real subprocess with the providers otel-claude sets up (OTLP over HTTP from the
standard variables) against an endpoint on loopback that refuses connections or accepts them and never answers.
Bounds are on work (export requests the endpoint received, warning lines), not on seconds.
"""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = """
import otel_claude
from opentelemetry import metrics, trace

otel_claude.instrument()
with trace.get_tracer("script").start_as_current_span("work"):
    pass
metrics.get_meter("script").create_counter("work.done").add(1)
print("done", flush=True)
"""
WARNING = "otel_claude: cannot export to the OTLP endpoint"


def run_script(endpoint: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "PYTHONPATH": str(REPO), **extra_env})
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=180)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SilentEndpoint:
    """Accepts connections and reads requests but never answers; counts the HTTP requests that arrived."""

    def __init__(self) -> None:
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self.port = self._server.getsockname()[1]
        self.requests = 0
        self._lock = threading.Lock()
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self._held.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        try:
            first = conn.recv(4)
        except OSError:
            return
        if first.startswith(b"POST"):
            with self._lock:
                self.requests += 1

    def close(self) -> None:
        self._server.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def silent_endpoint() -> Iterator[SilentEndpoint]:
    endpoint = SilentEndpoint()
    yield endpoint
    endpoint.close()


def test_refused_endpoint_gives_one_warning_and_no_retry_lines() -> None:
    result = run_script(f"http://127.0.0.1:{closed_port()}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(WARNING) and "OTEL_EXPORTER_OTLP_ENDPOINT" in lines[0]
    assert "Transient error" not in result.stderr and "Failed to export" not in result.stderr


def test_silent_endpoint_costs_one_export_not_one_per_signal(silent_endpoint: SilentEndpoint) -> None:
    # Spans and metrics both have data to send at exit; the first export times out and the second is dropped.
    result = run_script(f"http://127.0.0.1:{silent_endpoint.port}", OTEL_EXPORTER_OTLP_TIMEOUT="2")
    assert result.returncode == 0, result.stderr
    assert silent_endpoint.requests == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(WARNING), result.stderr


def test_no_warning_when_export_is_off() -> None:
    result = run_script(f"http://127.0.0.1:{closed_port()}", OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
    assert result.returncode == 0 and result.stderr == ""


class TracesOnly(http.server.BaseHTTPRequestHandler):
    """A backend that takes traces and answers 404 to metrics (as Phoenix does)."""

    received: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append(self.path)
        self.send_response(200 if self.path == "/v1/traces" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def traces_only() -> Iterator[str]:
    TracesOnly.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TracesOnly)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=10)


def test_a_signal_the_backend_refuses_stops_nothing_else(traces_only: str) -> None:
    # Metrics are exported first at exit (their provider was set up last); the 404 must not stop the spans.
    result = run_script(traces_only)
    assert result.returncode == 0, result.stderr
    assert sorted(TracesOnly.received) == ["/v1/metrics", "/v1/traces"]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "answers HTTP 404 to metrics" in lines[0], result.stderr
