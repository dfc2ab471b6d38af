"""A loopback server that speaks ClickHouse's HTTP interface and runs every query in chdb (the ClickHouse engine).

Test and benchmark support for the tuner's `clickhouse://` input: a real ClickHouse server cannot be installed here,
so the network path runs against this instead. The client (clickhouse-connect), the SQL, the engine that executes
it and the result formats (Native, with lz4/zstd/gzip response compression) are real; what is imitated is the HTTP
front: authentication, per-request settings, the database parameter, error headers and status codes, following
ClickHouse's HTTP interface documentation. Each request's settings are applied with `SET` and reset with
`SET name = DEFAULT` afterwards, so a request's limits hold for that request only.

Run alone (for bench/): `python tests/clickhouse_http.py --path DIR [--port 0] [--user U]`; the password is read
from CLICKHOUSE_PASSWORD. It prints `port N` once listening and `stats {...}` as JSON when stopped with SIGTERM.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import signal
import ssl
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# Parameters the HTTP handler itself consumes; every other parameter is a setting (ClickHouse HTTP interface docs).
_TRANSPORT = frozenset({
    "query", "database", "default_format", "user", "password", "quota_key", "query_id", "session_id",
    "session_timeout", "session_check", "compress", "decompress", "buffer_size", "wait_end_of_query",
    "client_protocol_version", "role", "enable_http_compression",
})
_CONTENT_TYPES = {"Native": "application/octet-stream", "JSONEachRow": "application/x-ndjson; charset=UTF-8",
                  "JSON": "application/json; charset=UTF-8"}
# Exception code -> HTTP status, as the server's HTTPHandler maps them.
_STATUS = {516: 401, 192: 401, 193: 401, 194: 401, 497: 403, 60: 404, 81: 404, 62: 400, 115: 400, 47: 400}
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _lz4(data: bytes) -> bytes:
    import lz4.frame

    return lz4.frame.compress(data)


def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


_ENCODERS = {"lz4": _lz4, "zstd": _zstd, "gzip": gzip.compress, "deflate": zlib.compress}


@dataclass
class Stats:
    """What left the server: bytes of response bodies as sent (after compression); per query its text, settings
    and response encoding."""

    requests: int = 0
    queries: list[str] = field(default_factory=list)
    settings: list[dict[str, str]] = field(default_factory=list)
    bytes_sent: int = 0
    encodings: list[str] = field(default_factory=list)


class _Failure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _literal(value: str) -> str:
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class ChdbHttpServer:
    """Serves one chdb session over HTTP on 127.0.0.1; queries run one at a time (a chdb session is not shared)."""

    def __init__(
        self, session: Any, user: str = "default", password: str = "", port: int = 0,
        tls: tuple[str, str] | None = None,
    ) -> None:
        """`tls`: (certificate file, key file) to serve HTTPS, as a server behind TLS termination would."""
        self.session = session
        self.user = user
        self.password = password
        self.stats = Stats()
        self._lock = threading.Lock()
        self.version = self._run("SELECT version()", "TabSeparated").decode().strip()
        self.timezone = self._run("SELECT timezone()", "TabSeparated").decode().strip()
        self.compression_default = self._run(
            "SELECT value FROM system.settings WHERE name = 'enable_http_compression'", "TabSeparated"
        ).decode().strip()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._httpd.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, scheme: str = "clickhouse", user: str | None = None, path: str = "") -> str:
        who = f"{user}@" if user else ""
        return f"{scheme}://{who}127.0.0.1:{self.port}{path}"

    def _run(self, sql: str, fmt: str) -> bytes:
        try:
            return self.session.query(sql, fmt).bytes()
        except Exception as err:  # chdb's error text is the server's: "Code: N. DB::Exception: ..."
            found = re.search(r"Code: (\d+)", str(err))
            raise _Failure(int(found.group(1)) if found else 1002, str(err)) from None

    @contextmanager
    def _applied(self, database: str | None, settings: dict[str, str]) -> Iterator[None]:
        applied: list[str] = []
        try:
            if database:
                self._run(f"USE {database}", "TabSeparated")
            for name, value in settings.items():
                if not _SETTING_NAME.match(name):
                    raise _Failure(115, f"Code: 115. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)")
                self._run(f"SET {name} = {_literal(value)}", "TabSeparated")
                applied.append(name)
            yield
        finally:
            for name in applied:
                self._run(f"SET {name} = DEFAULT", "TabSeparated")
            if database:
                self._run("USE default", "TabSeparated")

    def execute(self, query: str, fmt: str, database: str | None, settings: dict[str, str]) -> bytes:
        with self._lock, self._applied(database, settings):
            return self._run(query, fmt)

    def _authenticate(self, handler: BaseHTTPRequestHandler, params: dict[str, str]) -> None:
        user = handler.headers.get("X-ClickHouse-User") or params.get("user")
        password = handler.headers.get("X-ClickHouse-Key") or params.get("password") or ""
        basic = handler.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            user, _, password = base64.b64decode(basic[6:]).decode().partition(":")
        user = user or "default"
        if user != self.user or password != self.password:
            raise _Failure(516, f"Code: 516. DB::Exception: {user}: Authentication failed: password is incorrect, "
                                "or there is no user with such name. (AUTHENTICATION_FAILED)")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the stats
                return

            def do_GET(self) -> None:
                if urlsplit(self.path).path in ("/ping", "/_stats"):
                    stats = server.stats
                    body = b"Ok.\n" if self.path.startswith("/ping") else json.dumps(
                        {"requests": stats.requests, "bytes_sent": stats.bytes_sent}).encode()
                    self._send(200, body, {"Content-Type": "text/plain; charset=UTF-8"})
                    return
                self._serve(b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._serve(self.rfile.read(length))

            def _serve(self, body: bytes) -> None:
                params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
                query = "\n".join(part for part in (params.get("query", ""), body.decode()) if part)
                fmt = params.get("default_format", "TabSeparated")
                settings = {k: v for k, v in params.items() if k not in _TRANSPORT and not k.startswith("param_")}
                headers = {"X-ClickHouse-Query-Id": params.get("query_id") or str(uuid.uuid4()),
                           "X-ClickHouse-Timezone": server.timezone,
                           "X-ClickHouse-Server-Display-Name": "chdb-loopback"}
                started = time.perf_counter_ns()
                try:
                    server._authenticate(self, params)
                    explicit = re.search(r"\bFORMAT\s+(\w+)\s*;?\s*$", query, re.IGNORECASE)
                    fmt = explicit.group(1) if explicit else fmt
                    result = server.execute(query, fmt, params.get("database"), settings)
                except _Failure as failure:
                    message = str(failure)
                    if "(version" not in message:
                        message = f"{message} (version {server.version})"
                    headers["X-ClickHouse-Exception-Code"] = str(failure.code)
                    self._send(_STATUS.get(failure.code, 500), (message + "\n").encode(),
                               {**headers, "Content-Type": "text/plain; charset=UTF-8"})
                    return
                headers["X-ClickHouse-Format"] = fmt
                headers["Content-Type"] = _CONTENT_TYPES.get(fmt, "text/plain; charset=UTF-8")
                headers["X-ClickHouse-Summary"] = json.dumps({
                    "read_rows": "0", "read_bytes": "0", "written_rows": "0", "written_bytes": "0",
                    "total_rows_to_read": "0", "result_rows": "0", "result_bytes": str(len(result)),
                    "elapsed_ns": str(time.perf_counter_ns() - started)})
                chosen = "identity"
                if params.get("enable_http_compression", server.compression_default) == "1":
                    offered = [e.strip() for e in self.headers.get("Accept-Encoding", "").split(",")]
                    chosen = next((e for e in offered if e in _ENCODERS), chosen)
                if chosen != "identity":
                    result = _ENCODERS[chosen](result)
                    headers["Content-Encoding"] = chosen
                server.stats.encodings.append(chosen)
                server.stats.queries.append(query)
                server.stats.settings.append(settings)
                self._send(200, result, headers)

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                server.stats.requests += 1
                server.stats.bytes_sent += len(body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def start(self) -> ChdbHttpServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="chdb-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> ChdbHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> int:
    import argparse

    from chdb import session

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user", default="default")
    args = parser.parse_args()
    server = ChdbHttpServer(session.Session(args.path), args.user, os.environ.get("CLICKHOUSE_PASSWORD", ""),
                            args.port)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with server:
        print(f"port {server.port}", flush=True)
        stopped.wait()
    print("stats " + json.dumps({"requests": server.stats.requests, "bytes_sent": server.stats.bytes_sent}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
