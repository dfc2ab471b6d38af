"""Where the ClickHouse SQL runs: a chdb data directory in this process, or a ClickHouse server over HTTP(S).

`chdb:PATH` opens a local chdb directory. `clickhouse://[user@]host[:port][/database]?table=otel_traces` (plain HTTP,
port 8123 by default) or `https://[user@]host[:port][/database]?table=...` (TLS, port 8443) talks to a server with
`clickhouse-connect`. The password comes from `CLICKHOUSE_PASSWORD` or a file (`--clickhouse-password-file` or
`CLICKHOUSE_PASSWORD_FILE`), never from the URL: a password on a command line lands in shell history and process
lists. Every query carries limits on the server's time, memory and result size, so one tune cannot hurt a cluster
that is also ingesting, and every server error becomes one line that names no credential.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tuner._clickhouse import QueryError
from tuner._issues import TraceInputError

_SCHEMES = {"clickhouse": ("http", 8123), "http": ("http", 8123), "https": ("https", 8443)}
_URL_OPTIONS = frozenset({"table", "ca_cert"})
USER_VARIABLE = "CLICKHOUSE_USER"
PASSWORD_VARIABLE = "CLICKHOUSE_PASSWORD"
PASSWORD_FILE_VARIABLE = "CLICKHOUSE_PASSWORD_FILE"
# What a server answer means for the person running the tune (ClickHouse's error codes, src/Common/ErrorCodes.cpp).
_HINTS = {
    60: "the table does not exist (set ?table= or --clickhouse-table)",
    81: "the database does not exist",
    159: "the query ran past max_execution_time (raise --clickhouse-max-execution-time or narrow --since)",
    192: "unknown user (set CLICKHOUSE_USER or user@ in the URL)",
    193: "wrong password (check CLICKHOUSE_PASSWORD or the password file)",
    194: "the user needs a password (set CLICKHOUSE_PASSWORD or --clickhouse-password-file)",
    241: "the query needed more than max_memory_usage (raise --clickhouse-max-memory or narrow --since)",
    396: "the result is larger than max_result_rows (raise --clickhouse-max-result-rows)",
    497: "the user may not read this table (GRANT SELECT ON db.table)",
    516: "authentication failed (check CLICKHOUSE_USER and CLICKHOUSE_PASSWORD)",
}


def is_clickhouse_input(text: str) -> bool:
    return text.startswith("chdb:") or bool(re.match(r"^(clickhouse|https?)://", text))


@dataclass(frozen=True)
class Limits:
    """Bounds on what one tune may cost the server, sent with every query."""

    max_execution_time: int = 600  # seconds per query
    max_memory_usage: int = 8 * 2**30  # bytes per query
    max_result_rows: int = 1_000_000  # rows per result (one per (task, model) or (task, prefix))

    def settings(self) -> dict[str, Any]:
        return {
            "max_execution_time": self.max_execution_time,
            "max_memory_usage": self.max_memory_usage,
            "max_result_rows": self.max_result_rows,
            "result_overflow_mode": "throw",
        }


def _one_line(message: str) -> str:
    """The server's own sentence: first line, without the version trailer or stack trace."""
    found = re.search(r"Code: \d+\. (?:DB::Exception: )?(.*)", message)
    text = (found.group(1) if found else message).strip().splitlines()[0] if message.strip() else "no details"
    return re.sub(r"\s*\(version [^)]*\)\.?$", "", text).strip()


def describe_failure(code: int | None, message: str) -> str:
    hint = _HINTS.get(code or 0)
    line = _one_line(message)
    return f"{hint}: {line}" if hint else line


class ChdbRunner:
    """Runs SQL in an in-process ClickHouse (chdb) over a data directory."""

    def __init__(self, path: str) -> None:
        try:
            from chdb import session
        except ImportError:
            raise TraceInputError("chdb: inputs need 'chdb' (pip install 'otel-claude[clickhouse]')") from None
        self.source = f"chdb:{path}"
        self._session = session.Session(path)

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return list(self.stream(sql))

    def stream(self, sql: str) -> Iterator[dict[str, Any]]:
        try:
            result = self._session.query(sql, "JSONEachRow")
        except Exception as err:  # chdb raises ChdbError (a RuntimeError) with the server's message
            code = re.search(r"Code: (\d+)", str(err))
            raise QueryError(describe_failure(int(code.group(1)) if code else None, str(err))) from None
        for line in io.BytesIO(result.bytes()):
            if line.strip():
                yield json.loads(line)

    def close(self) -> None:
        self._session.close()


@dataclass(frozen=True)
class ServerAddress:
    """A parsed `clickhouse://` / `https://` input; holds no password."""

    interface: str
    host: str
    port: int
    database: str | None
    table: str | None
    user: str | None
    ca_cert: str | None = field(default=None)

    @property
    def display(self) -> str:
        database = f"/{self.database}" if self.database else ""
        return f"{self.interface}://{self.host}:{self.port}{database}"


def parse_server_url(text: str) -> ServerAddress:
    parts = urlsplit(text)
    interface, default_port = _SCHEMES[parts.scheme]
    if parts.password is not None:
        raise TraceInputError(
            "clickhouse: do not put a password in the URL (it would land in shell history, process lists and "
            f"logs); set {PASSWORD_VARIABLE} or --clickhouse-password-file"
        )
    if not parts.hostname:
        raise TraceInputError("clickhouse: the URL names no host (clickhouse://user@host:8123/db?table=otel_traces)")
    options = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(options) - _URL_OPTIONS)
    if unknown:
        raise TraceInputError(f"clickhouse: unknown URL option(s) {', '.join(unknown)}; known: table, ca_cert")
    try:
        port = parts.port or default_port
    except ValueError:
        raise TraceInputError("clickhouse: the URL's port is not a number") from None
    database = unquote(parts.path.strip("/")) or None
    return ServerAddress(
        interface=interface,
        host=parts.hostname,
        port=port,
        database=database,
        table=options["table"][-1] if "table" in options else None,
        user=unquote(parts.username) if parts.username else None,
        ca_cert=options["ca_cert"][-1] if "ca_cert" in options else None,
    )


def read_password(password_file: str | None) -> str:
    """The password from the environment or a file; '' when none is configured (the server decides)."""
    path = password_file or os.environ.get(PASSWORD_FILE_VARIABLE)
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as err:
            raise TraceInputError(f"clickhouse: cannot read the password file {path}: {err.strerror}") from None
    return os.environ.get(PASSWORD_VARIABLE, "")


def _transport_reason(err: BaseException) -> str:
    """What the socket or TLS layer said, from the innermost error of the chain the HTTP client raised."""
    chain: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for cause in reversed(chain):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not trusted: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS: {cause.reason or cause}"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    return type(chain[-1]).__name__


class HttpRunner:
    """Runs SQL on a ClickHouse server through clickhouse-connect (HTTP or HTTPS), with the tune's limits."""

    def __init__(self, address: ServerAddress, password: str, limits: Limits) -> None:
        try:
            import clickhouse_connect
            from clickhouse_connect.driver.exceptions import ClickHouseError
        except ImportError:
            raise TraceInputError(
                "clickhouse:// inputs need 'clickhouse-connect' (pip install 'otel-claude[clickhouse]')"
            ) from None
        self.source = address.display
        self._errors = ClickHouseError
        # The driver logs transport failures with a traceback before raising; the tune reports them in one line.
        logging.getLogger("clickhouse_connect").setLevel(logging.CRITICAL)
        self._settings = limits.settings()
        user = address.user or os.environ.get(USER_VARIABLE) or "default"
        try:
            self._client = clickhouse_connect.get_client(
                interface=address.interface,
                host=address.host,
                port=address.port,
                username=user,
                password=password,
                database=address.database or "__default__",
                ca_cert=address.ca_cert,
                # The server gives up first (max_execution_time); the client waits a little longer for its answer.
                send_receive_timeout=limits.max_execution_time + 60,
                connect_timeout=30,
                client_name="otel-claude-tune",
                # The server's sentence without the URL or version trailer; the password never travels in either.
                show_clickhouse_errors="scrub",
            )
        except self._errors as err:
            raise TraceInputError(f"{self.source}: cannot connect: {self._describe(err)}") from None

    def _describe(self, err: Exception) -> str:
        code = getattr(err, "code", None)
        if code is None and err.__cause__ is not None:
            return (
                f"the server did not answer ({_transport_reason(err)}); check host, port and scheme "
                "(clickhouse:// is HTTP, https:// is TLS, ca_cert= for a private CA)"
            )
        return describe_failure(code, re.sub(r"^.*server response: ", "", str(err)))

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return list(self.stream(sql))

    def stream(self, sql: str) -> Iterator[dict[str, Any]]:
        try:
            with self._client.query_rows_stream(sql, settings=self._settings) as rows:
                names = rows.source.column_names
                for row in rows:
                    yield dict(zip(names, row, strict=True))
        except self._errors as err:
            raise QueryError(self._describe(err)) from None

    def close(self) -> None:
        self._client.close()


def open_runner(
    text: str, limits: Limits = Limits(), password_file: str | None = None
) -> tuple[ChdbRunner | HttpRunner, str | None]:
    """The runner for a `chdb:` or server input, and the table the URL names (None: the caller's default)."""
    if text.startswith("chdb:"):
        return ChdbRunner(text[len("chdb:") :]), None
    address = parse_server_url(text)
    return HttpRunner(address, read_password(password_file), limits), address.table
