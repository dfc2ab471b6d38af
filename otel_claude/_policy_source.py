"""Where the policy comes from, and keeping it current without a restart.

Files (by mtime, size and inode) and URLs (with ETag) are re-checked by a daemon thread, so a call only ever reads
the current policy: it never stats, reads, parses or waits on the network (a hostile 1 MB policy takes seconds to
reject). A bad update is logged and ignored: the last good policy stays.

A file is read only once it has stopped changing: an editor or a deploy tool writing it in pieces would otherwise
put the first piece in force (a header alone is a valid policy with no rules). Publish by writing a temporary file
and renaming it over the policy (docs/policy.md): the poller then never sees a partial file at all.

Logs name the source, and a URL only without its query string and userinfo (where tokens and passwords go).
"""

from __future__ import annotations

import base64
import http.client
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from ._forks import register as register_after_fork
from ._safety import report_failure
from .policy import Policy, PolicyError, load_policy_text, parse_policy

__all__ = ["PolicySource", "open_source", "read_policy_url", "redacted_url"]

log = logging.getLogger("otel_claude")
ENV = "OTEL_CLAUDE_POLICY"
_MAX_BYTES = 1_000_000
_HTTP_TIMEOUT_S = 5.0
# A file whose last change is at least this old is complete, whoever wrote it; a newer one must be seen unchanged by
# two checks in a row first.
_SETTLE_NS = 1_000_000_000
_UNREADABLE = (-1, -1, -1)


class PolicySource:
    """Holds the current policy; `current()` is what the call path asks for. `label` names it in every log line."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._policy: Policy | None = None
        self.last_error: str | None = None
        # Counts completed checks (accepted, rejected or unchanged) so a waiter can tell a check has happened.
        self.generation = 0
        self._checked = threading.Condition()
        self._listeners: list[Callable[[Policy | None], None]] = []
        register_after_fork(self)

    def _after_fork_in_child(self) -> None:
        self._checked = threading.Condition()

    def current(self) -> Policy | None:
        return self._policy

    def subscribe(self, listener: Callable[[Policy | None], None]) -> None:
        """Call `listener` with the policy in force now and with every policy accepted later (on the poller)."""
        self._listeners.append(listener)
        self._notify(listener, self._policy)

    def _accept(self, policy: Policy) -> None:
        previous = self._policy
        if previous is None or policy.version != previous.version:
            log.info("otel_claude: policy %s from %s in force (%d rules, mode %s)", policy.version, self.label,
                     len(policy.rules), policy.mode)
        elif policy != previous:
            log.warning("otel_claude: policy %s from %s changed content but not its version (%d rules, mode %s): "
                        "spans cannot tell the two apart; give each change a new version", policy.version,
                        self.label, len(policy.rules), policy.mode)
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

    def _reject(self, problem: str) -> None:
        """Log a rejection; the message always names the source (and never a URL's secrets)."""
        message = self._redact(problem)
        if not message.startswith(f"{self.label}:"):
            message = f"{self.label}: {message}"
        self.last_error = message
        kept = f"; keeping policy {self._policy.version}" if self._policy else "; no policy in force"
        log.error("otel_claude: policy rejected: %s%s", message, kept)

    def _redact(self, text: str) -> str:
        return text

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
    """A source re-checked by a daemon thread every `reload_interval` seconds, in this process and in every child
    forked from it (a thread does not survive fork: without a new one a pre-fork worker would keep its first
    policy for ever)."""

    def __init__(self, label: str, reload_interval: float) -> None:
        super().__init__(label)
        self.reload_interval = max(reload_interval, 0.05)
        self._closed = False
        self._stop = threading.Event()

    # URL sources fetch for the first time on the poller: an unreachable URL must not delay the service's start.
    _first_check_on_poller = False

    def _start_poller(self) -> None:
        threading.Thread(target=self._poll, args=(self._stop,), name="otel-claude-policy", daemon=True).start()

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        self._stop = threading.Event()
        if not self._closed:
            self._start_poller()

    def _poll(self, stop: threading.Event) -> None:
        if self._first_check_on_poller:
            self._check()
        while not stop.wait(self.reload_interval):
            self._check()

    def _check(self) -> None:
        try:
            self.refresh()
        except Exception as err:  # a poller that dies would freeze the policy silently
            self._reject(f"unexpected error while reloading: {type(err).__name__}: {err}")
        finally:
            self._done_check()

    def refresh(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._closed = True
        self._stop.set()


class StaticSource(PolicySource):
    def __init__(self, policy: Policy, label: str) -> None:
        super().__init__(label)
        self._accept(policy)


class FileSource(_PolledSource):
    def __init__(self, path: str, reload_interval: float) -> None:
        super().__init__(path, reload_interval)
        self.path = path
        self._seen: tuple[int, int, int] | None = None  # the stamp of the content last accepted or rejected
        self._pending: tuple[int, int, int] | None = None  # a newer stamp, waiting to be seen unchanged once more
        # At start the file is read whatever its age, so a policy written just before the service started is in
        # force from the first call; there is no earlier policy a partial file could displace.
        self._started = False
        self._check()
        self._started = True
        self._start_poller()

    def refresh(self) -> None:
        try:
            stat = os.stat(self.path)
        except OSError as err:
            if self._seen != _UNREADABLE:
                self._seen, self._pending = _UNREADABLE, None
                self._reject(f"cannot read policy file ({err.strerror})")
            return
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp == self._seen:
            return
        if stat.st_size > _MAX_BYTES:
            self._seen, self._pending = stamp, None
            self._reject(f"policy file is {stat.st_size} bytes, over the {_MAX_BYTES} byte limit")
            return
        if self._started and stamp != self._pending and time.time_ns() - stat.st_mtime_ns < _SETTLE_NS:
            self._pending = stamp  # still being written, perhaps: read it when the next check finds it unchanged
            return
        try:
            with open(self.path, "rb") as handle:
                data = handle.read(_MAX_BYTES + 1)
                after = os.fstat(handle.fileno())
        except OSError as err:
            self._seen, self._pending = stamp, None
            self._reject(f"cannot read policy file ({err.strerror})")
            return
        if (after.st_mtime_ns, after.st_size, after.st_ino) != stamp or len(data) != stat.st_size:
            self._pending = None  # written to while we read: wait until it stops changing
            return
        self._seen, self._pending = stamp, None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            self._reject(f"policy file is not UTF-8 text ({err.reason} at byte {err.start})")
            return
        try:
            self._accept(load_policy_text(text, self.label, max_bytes=_MAX_BYTES))
        except PolicyError as err:
            self._reject(str(err))


def redacted_url(url: str) -> str:
    """`url` as logs may show it: no userinfo, query string or fragment (where tokens and passwords go)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


class UrlSource(_PolledSource):
    _first_check_on_poller = True

    def __init__(self, url: str, reload_interval: float) -> None:
        super().__init__(redacted_url(url), reload_interval)
        parts = urllib.parse.urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        self._request_url, self._auth = _request_parts(url)
        # Whole URLs become the label; the parts that carry credentials become ***, longest first so a secret
        # that contains another is removed whole.
        self._urls = (url, self._request_url)
        secrets = {userinfo, parts.query, parts.fragment, parts.password or "", parts.username or ""}
        secrets |= {value for _, value in urllib.parse.parse_qsl(parts.query)}
        secrets |= {urllib.parse.unquote(s) for s in secrets}
        self._secrets = sorted((s for s in secrets if s), key=len, reverse=True)
        self._etag: str | None = None
        self._start_poller()

    def _redact(self, text: str) -> str:
        for url in self._urls:
            text = text.replace(url, self.label)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def refresh(self) -> None:
        headers = dict(self._auth)
        if self._etag:
            headers["If-None-Match"] = self._etag
        try:
            fetched = _fetch(self._request_url, headers)
        except _Unusable as err:
            self._reject(str(err))
            return
        if fetched is None:
            return  # 304: unchanged
        text, etag = fetched
        try:
            self._accept(load_policy_text(text, self.label, max_bytes=_MAX_BYTES))
            self._etag = etag
        except PolicyError as err:
            self._reject(str(err))


class _Unusable(Exception):
    """What keeps a URL's answer from being read as a policy (the message names no URL)."""


def _request_parts(url: str) -> tuple[str, dict[str, str]]:
    """The URL to request and its headers: userinfo becomes a Basic authorization header (urllib would take it
    for part of the host name)."""
    parts = urllib.parse.urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    request_url = urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, ""))
    auth: dict[str, str] = {}
    if userinfo:
        user, _, password = userinfo.partition(":")
        pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}".encode()
        auth["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    return request_url, auth


def _fetch(request_url: str, headers: dict[str, str]) -> tuple[str, str | None] | None:
    """(policy text, ETag), or None for 304 Not Modified; raises _Unusable."""
    request = urllib.request.Request(request_url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as response:
            body = _read_by(response, time.monotonic() + _HTTP_TIMEOUT_S)
            etag = response.headers.get("ETag")
    except TimeoutError:
        raise _Unusable(f"no complete response within {_HTTP_TIMEOUT_S:g} s") from None
    except urllib.error.HTTPError as err:
        if err.code == 304:
            return None
        raise _Unusable(f"HTTP {err.code}") from None
    except (OSError, ValueError, http.client.HTTPException) as err:
        raise _Unusable(f"unreachable ({type(err).__name__}: {err})") from None
    if len(body) > _MAX_BYTES:
        raise _Unusable(f"policy is over the {_MAX_BYTES} byte limit")
    try:
        return body.decode("utf-8"), etag
    except UnicodeDecodeError as err:
        raise _Unusable(f"policy is not UTF-8 text ({err.reason} at byte {err.start})") from None


def read_policy_url(url: str) -> Policy:
    """Fetch and validate the policy at an http(s) URL once (`otel-claude check`); raises PolicyError naming the
    URL without its credentials."""
    label = redacted_url(url)
    try:
        fetched = _fetch(*_request_parts(url))
    except _Unusable as err:
        raise PolicyError(f"{label}: {err}") from None
    if fetched is None:  # no If-None-Match was sent: a 304 here is a broken server
        raise PolicyError(f"{label}: HTTP 304 without a conditional request")
    return load_policy_text(fetched[0], label, max_bytes=_MAX_BYTES)


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
        return StaticSource(source, "instrument(policy=...)")
    if isinstance(source, Mapping):
        return StaticSource(parse_policy(source, "instrument(policy=...)"), "instrument(policy=...)")
    text = os.fspath(source)
    if text.startswith(("http://", "https://")):
        return UrlSource(text, 30.0 if reload_interval is None else reload_interval)
    return FileSource(text, 1.0 if reload_interval is None else reload_interval)
