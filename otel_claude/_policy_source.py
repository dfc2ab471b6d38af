"""Where the policy comes from, and keeping it current without a restart.

Files (by mtime) and URLs (with ETag) are re-checked by a daemon thread, so a call only ever reads the current
policy: it never stats, reads, parses or waits on the network (a hostile 1 MB policy takes seconds to reject).
A bad update is logged and ignored: the last good policy stays.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from ._safety import report_failure
from .policy import Policy, PolicyError, load_policy_text, parse_policy

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
        # Counts completed checks (accepted, rejected or unchanged) so a waiter can tell a check has happened.
        self.generation = 0
        self._checked = threading.Condition()
        self._listeners: list[Callable[[Policy | None], None]] = []

    def current(self) -> Policy | None:
        return self._policy

    def subscribe(self, listener: Callable[[Policy | None], None]) -> None:
        """Call `listener` with the policy in force now and with every policy accepted later (on the poller)."""
        self._listeners.append(listener)
        self._notify(listener, self._policy)

    def _accept(self, policy: Policy) -> None:
        if self._policy is None or policy.version != self._policy.version:
            log.info("otel_claude: policy %s in force (%d rules, mode %s)", policy.version, len(policy.rules),
                     policy.mode)
        self._policy = policy
        self.last_error = None
        for listener in list(self._listeners):
            self._notify(listener, policy)

    @staticmethod
    def _notify(listener: Callable[[Policy | None], None], policy: Policy | None) -> None:
        try:
            listener(policy)
        except Exception:
            report_failure("applying a new policy")

    def _reject(self, message: str) -> None:
        self.last_error = message
        kept = f"; keeping policy {self._policy.version}" if self._policy else "; no policy in force"
        log.error("otel_claude: policy rejected: %s%s", message, kept)

    def _done_check(self) -> None:
        with self._checked:
            self.generation += 1
            self._checked.notify_all()

    def wait_checked(self, after: int, timeout: float) -> bool:
        """Block until a check newer than generation `after` has completed (for tools and tests)."""
        with self._checked:
            return self._checked.wait_for(lambda: self.generation > after, timeout)

    def close(self) -> None:
        pass


class _PolledSource(PolicySource):
    """A source re-checked by a daemon thread every `reload_interval` seconds."""

    def __init__(self, reload_interval: float) -> None:
        super().__init__()
        self.reload_interval = max(reload_interval, 0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="otel-claude-policy", daemon=True)

    # URL sources fetch for the first time on the poller: an unreachable URL must not delay the service's start.
    _first_check_on_poller = False

    def _poll(self) -> None:
        if self._first_check_on_poller:
            self._check()
        while not self._stop.wait(self.reload_interval):
            self._check()

    def _check(self) -> None:
        try:
            self.refresh()
        except Exception as err:  # a poller that dies would freeze the policy silently
            self._reject(f"unexpected error while reloading: {err!r}")
        finally:
            self._done_check()

    def refresh(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()


class StaticSource(PolicySource):
    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self._accept(policy)


class FileSource(_PolledSource):
    def __init__(self, path: str, reload_interval: float) -> None:
        super().__init__(reload_interval)
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._check()  # at start, so a readable policy is in force from the first call
        self._thread.start()

    def refresh(self) -> None:
        try:
            stat = os.stat(self.path)
        except OSError as err:
            if self._seen != (-1, -1, -1):
                self._seen = (-1, -1, -1)
                self._reject(f"{self.path}: cannot read policy file ({err.strerror})")
            return
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
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


class UrlSource(_PolledSource):
    _first_check_on_poller = True

    def __init__(self, url: str, reload_interval: float) -> None:
        super().__init__(reload_interval)
        self.url = url
        self._etag: str | None = None
        self._thread.start()

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
