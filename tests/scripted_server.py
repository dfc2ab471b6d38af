"""A loopback HTTP server that answers with scripted bytes: for replaying recordings and odd responses exactly.

The simulator (claude_sim) models the API; this server models nothing, so a test controls every byte, header
and timing of what the real SDK receives (padded SSE, missing message_stop, dropped connections, error events).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    chunks: Iterable[bytes] = ()
    drop_after: int | None = None  # close the socket after this many chunks, without finishing the body
    wait: threading.Event | None = None  # block until set (a stall the test releases), after `wait_after` chunks
    wait_after: int = 0
    hold_headers: threading.Event | None = None  # block before the status line until set (a stall before headers)

    @classmethod
    def json(cls, body: Any, status: int = 200, headers: dict[str, str] | None = None, **kwargs: Any) -> Reply:
        data = json.dumps(body).encode()
        return cls(status, {"content-type": "application/json", "request-id": "req_test", **(headers or {})}, [data],
                   **kwargs)

    @classmethod
    def sse(cls, events: Iterable[tuple[str, Any]], **kwargs: Any) -> Reply:
        chunks = [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]
        headers = {"content-type": "text/event-stream; charset=utf-8", "request-id": "req_test"}
        return cls(200, headers, chunks, **kwargs)

    @classmethod
    def raw_sse(cls, body: bytes, **kwargs: Any) -> Reply:
        headers = {"content-type": "text/event-stream; charset=utf-8", "request-id": "req_test"}
        return cls(200, headers, [body], **kwargs)


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # hundreds of concurrent test clients connect at once
    daemon_threads = True


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class ScriptedServer:
    """`with ScriptedServer(script) as s:` where script is a list of Reply (served in order) or a function."""

    def __init__(self, script: list[Reply] | Callable[[Received], Reply]) -> None:
        self._script = script
        self._lock = threading.Lock()
        self.received: list[Received] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                request = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                reply = server._next(request)
                # A released stall may find the client gone (it timed out): that is the point, not an error.
                with contextlib.suppress(OSError):
                    self._reply(reply)
                self.close_connection = True

            def _reply(self, reply: Reply) -> None:
                if reply.hold_headers is not None:
                    reply.hold_headers.wait(timeout=300)
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                if reply.drop_after is not None:
                    # Promise more body than will come, so closing early is a broken connection, not an EOF.
                    self.send_header("content-length", "1000000")
                self.send_header("connection", "close")
                self.end_headers()
                for number, chunk in enumerate(reply.chunks):
                    if reply.wait is not None and number == reply.wait_after:
                        reply.wait.wait(timeout=300)
                    if reply.drop_after is not None and number >= reply.drop_after:
                        break
                    self.wfile.write(chunk)
                    self.wfile.flush()

            do_GET = do_POST = do_DELETE = _handle

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def _next(self, request: Received) -> Reply:
        with self._lock:
            self.received.append(request)
            if callable(self._script):
                return self._script(request)
            if not self._script:
                return Reply.json({"type": "error", "error": {"type": "api_error", "message": "script exhausted"}}, 500)
            return self._script.pop(0)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
