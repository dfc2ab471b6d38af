"""Where the policy comes from, and keeping it current without a restart.

A file is re-checked by mtime on the call path (a stat, rate-limited); a URL is polled by a daemon thread with
ETag, so no call ever waits on the network. A bad update is logged and ignored: the last good policy stays.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from ._policy_schema import Policy, PolicyError, load_policy_text, parse_policy

__all__ = ["PolicySource", "open_source"]

log = logging.getLogger("otel_claude")
ENV = "OTEL_CLAUDE_POLICY"
_MAX_BYTES = 1_000_000
_HTTP_TIMEOUT_S = 5.0


class PolicySource:
    """Holds the current policy; `current()` is what the call path asks for."""

    def __init__(self) -> None:
        self._policy: Policy | None = None
        self.last_error: str | None = None

    def current(self) -> Policy | None:
        return self._policy

    def _accept(self, policy: Policy) -> None:
        if self._policy is None or policy.version != self._policy.version:
            log.info("otel_claude: policy %s in force (%d rules, mode %s)", policy.version, len(policy.rules),
                     policy.mode)
        self._policy = policy
        self.last_error = None

    def _reject(self, message: str) -> None:
        self.last_error = message
        kept = f"; keeping policy {self._policy.version}" if self._policy else "; no policy in force"
        log.error("otel_claude: policy rejected: %s%s", message, kept)

    def close(self) -> None:
        pass


class StaticSource(PolicySource):
    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self._accept(policy)


class FileSource(PolicySource):
    def __init__(self, path: str, reload_interval: float) -> None:
        super().__init__()
        self.path = path
        self.reload_interval = reload_interval
        self._seen: tuple[float, int] | None = None
        self._next_check = 0.0
        self._lock = threading.Lock()
        self.refresh()

    def current(self) -> Policy | None:
        if time.monotonic() >= self._next_check:
            self.refresh()
        return self._policy

    def refresh(self) -> None:
        # One thread re-reads; the others keep using the current policy meanwhile.
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._next_check = time.monotonic() + self.reload_interval
            try:
                stat = os.stat(self.path)
            except OSError as err:
                if self._seen != (-1.0, -1):
                    self._seen = (-1.0, -1)
                    self._reject(f"{self.path}: cannot read policy file ({err.strerror})")
                return
            stamp = (stat.st_mtime, stat.st_size)
            if stamp == self._seen:
                return
            self._seen = stamp
            if stat.st_size > _MAX_BYTES:
                self._reject(f"{self.path}: policy file is {stat.st_size} bytes, over the {_MAX_BYTES} byte limit")
                return
            try:
                with open(self.path, encoding="utf-8") as handle:
                    text = handle.read(_MAX_BYTES + 1)
                self._accept(load_policy_text(text, self.path, max_bytes=_MAX_BYTES))
            except (OSError, UnicodeDecodeError, PolicyError) as err:
                self._reject(str(err))
        finally:
            self._lock.release()


class UrlSource(PolicySource):
    def __init__(self, url: str, reload_interval: float) -> None:
        super().__init__()
        self.url = url
        self.reload_interval = max(reload_interval, 0.05)
        self._etag: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="otel-claude-policy", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while True:
            self.refresh()
            if self._stop.wait(self.reload_interval):
                return

    def refresh(self) -> None:
        request = urllib.request.Request(self.url, headers={"If-None-Match": self._etag} if self._etag else {})
        try:
            with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as response:
                body = _read_by(response, time.monotonic() + _HTTP_TIMEOUT_S)
                etag = response.headers.get("ETag")
        except TimeoutError:
            self._reject(f"{self.url}: no complete response within {_HTTP_TIMEOUT_S:g} s")
            return
        except urllib.error.HTTPError as err:
            if err.code != 304:
                self._reject(f"{self.url}: HTTP {err.code}")
            return
        except (OSError, ValueError) as err:
            self._reject(f"{self.url}: unreachable ({err})")
            return
        if len(body) > _MAX_BYTES:
            self._reject(f"{self.url}: policy is over the {_MAX_BYTES} byte limit")
            return
        try:
            self._accept(load_policy_text(body.decode("utf-8"), self.url, max_bytes=_MAX_BYTES))
            self._etag = etag
        except (UnicodeDecodeError, PolicyError) as err:
            self._reject(str(err))

    def close(self) -> None:
        self._stop.set()


def _read_by(response: Any, deadline: float) -> bytes:
    """Up to _MAX_BYTES + 1 bytes of body, or TimeoutError once `deadline` passes.

    The socket timeout alone bounds each read, not the whole body: a server sending a byte every few seconds
    would hold the poller for days.
    """
    chunks: list[bytes] = []
    size = 0
    while size <= _MAX_BYTES:
        if time.monotonic() > deadline:
            raise TimeoutError
        chunk = response.read1(min(65_536, _MAX_BYTES + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def open_source(source: Any, reload_interval: float | None = None) -> PolicySource | None:
    """The source for `instrument(policy=...)`: a Policy, mapping, path or http(s) URL; None reads OTEL_CLAUDE_POLICY.

    Raises PolicyError only for a policy given inline (a mapping) that is invalid: that is a programming error the
    caller sees at start. Files and URLs that are missing or bad are logged and retried instead.
    """
    if source is None:
        source = os.environ.get(ENV) or None
        if source is None:
            return None
    if isinstance(source, Policy):
        return StaticSource(source)
    if isinstance(source, Mapping):
        return StaticSource(parse_policy(source, "instrument(policy=...)"))
    text = os.fspath(source)
    if text.startswith(("http://", "https://")):
        return UrlSource(text, 30.0 if reload_interval is None else reload_interval)
    return FileSource(text, 1.0 if reload_interval is None else reload_interval)
