"""Hostile policy inputs are rejected with an error naming the source, with bounded work and memory.

Work is bounded by what was done, not by seconds (CI runs on a loaded machine): YAML nodes built, bytes read from
a server before giving up. docs/reliability.md lists the measured times.
"""

from __future__ import annotations

import os
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from otel_claude import _policy_source, policy
from otel_claude._policy_source import FileSource, UrlSource
from otel_claude.policy import PolicyError, load_policy_text

BOUND_MB = 50.0
NESTED = policy._MAX_DEPTH + 1  # nodes a nesting guard may build before it refuses


def laughs(levels: int) -> str:
    """The billion-laughs alias bomb: each level is nine aliases of the one before."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


# name: (text, fragment of the error, most YAML nodes the loader may build before refusing)
HOSTILE = {
    "billion laughs": (laughs(9), "alias bomb", 100),
    "quadratic blowup (one big alias, many uses)": (
        "a: &a [" + ",".join(["x"] * 5000) + "]\nb: [" + ",".join(["*a"] * 5000) + "]\n", "alias bomb", 10_100),
    "deep flow nesting": ("[" * 10_000 + "]" * 10_000, "nests deeper", NESTED),
    "deep block nesting": ("".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v\n", "nests deeper",
                           2 * NESTED),
    "over the size limit": ("x" * 5_000_000, "larger than the limit", 0),
    "python object tag": ("!!python/object/apply:os.system ['true']\n", "not valid YAML", 2),
    "duplicate keys": ("schema_version: 1\nversion: a\nversion: b\nrules: []\n", "duplicate key", 10),
    "binary junk": ("\x00\x01\x02\ufffe" * 1000, "not valid YAML", 0),
    "wrong types everywhere": ("schema_version: '1'\nversion: [1]\nrules: {a: 1}\n", "schema_version", 20),
    "wide list of junk rules": ("schema_version: 1\nversion: v\nrules:\n" + "- 1\n" * 5_000, "rules", 5_010),
}


@pytest.fixture
def nodes_built(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the YAML nodes the guarded loader composes: the parse's work, whatever the machine's speed."""
    count = [0]
    compose = policy._GuardedLoader.compose_node

    def counting(loader: Any, parent: Any, index: Any) -> Any:
        count[0] += 1
        return compose(loader, parent, index)

    monkeypatch.setattr(policy._GuardedLoader, "compose_node", counting)
    return count


def measured(action: Callable[[], Any]) -> tuple[float, BaseException | None]:
    """(peak MB allocated, exception raised) for one action."""
    tracemalloc.start()
    error: BaseException | None = None
    try:
        action()
    except Exception as err:
        error = err
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return peak, error


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_text_rejected_with_located_error(name: str, nodes_built: list[int]) -> None:
    text, fragment, most_nodes = HOSTILE[name]
    peak, error = measured(lambda: load_policy_text(text, f"policy:{name}"))
    assert isinstance(error, PolicyError), error
    assert str(error).startswith(f"policy:{name}: ")
    assert fragment in str(error)
    assert nodes_built[0] <= most_nodes
    assert peak < BOUND_MB


def settled(path: Path, mtime: int) -> None:
    """Date the file in the past: written completely, as a file renamed into place is."""
    os.utime(path, (mtime, mtime))


@pytest.mark.parametrize("name", ["billion laughs", "deep flow nesting", "binary junk"])
def test_hostile_file_keeps_last_good_policy(tmp_path: Path, name: str, nodes_built: list[int]) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("schema_version: 1\nversion: good\nrules: []\n")
    source = FileSource(str(path), reload_interval=3600)
    assert source.current() is not None and source.current().version == "good"
    path.write_bytes(HOSTILE[name][0].encode("utf-8", errors="surrogatepass") + b"\n# changed\n")
    settled(path, 1_000_000_000)
    nodes_built[0] = 0
    _, error = measured(source.refresh)
    assert error is None  # a file source logs and keeps going; it never raises into the call path
    assert source.current().version == "good"
    assert source.last_error is not None and source.last_error.startswith(f"{path}: ")
    assert nodes_built[0] <= HOSTILE[name][2]


def test_huge_file_is_refused_by_size_without_reading(tmp_path: Path, nodes_built: list[int]) -> None:
    path = tmp_path / "policy.yaml"
    with path.open("wb") as handle:  # sparse: 2 GB on paper, nothing on disk
        handle.truncate(2_000_000_000)
    peak, error = measured(lambda: FileSource(str(path), reload_interval=3600))
    assert error is None
    assert peak < 1.0 and nodes_built[0] == 0


# -- slow and hostile policy URLs -----------------------------------------------------------------------------------


class PolicyServer:
    """Serves `body` for GET, `drip` seconds between bytes (a slowloris), or `size` bytes of filler."""

    def __init__(self, body: bytes, drip: float = 0.0, declared: int | None = None) -> None:
        self.stop = threading.Event()
        self.sent = 0  # body bytes written so far
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-length", str(declared if declared is not None else len(body)))
                self.end_headers()
                if not drip:
                    self.wfile.write(body)
                    return
                for byte in body:
                    if outer.stop.wait(drip):  # the fault under test: a server that sends very slowly
                        return
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:  # the client gave up
                        return
                    outer.sent += 1

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/policy.yaml"

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def short_timeout(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    monkeypatch.setattr(_policy_source, "_HTTP_TIMEOUT_S", 0.5)
    yield 0.5


class ManualUrlSource(UrlSource):
    """A URL source whose poll thread does nothing: the test drives refresh() itself."""

    def _poll(self, stop: threading.Event) -> None:
        pass


def url_source(url: str) -> UrlSource:
    return ManualUrlSource(url, reload_interval=3600)


def test_slow_drip_url_gives_up_at_its_deadline(short_timeout: float) -> None:
    body = b"schema_version: 1\nversion: slow\nrules: []\n" * 20
    server = PolicyServer(body, drip=0.05)
    try:
        source = url_source(server.url)
        source.refresh()
        # Bounded by bytes, not seconds: the poller gave up while the server still had most of the body to send.
        assert server.sent < len(body) // 2, "a byte every 50 ms must not hold the poller until the body ends"
        assert source.current() is None
        assert source.last_error is not None and source.last_error.startswith(server.url + ": ")
    finally:
        server.close()


def test_url_over_the_size_limit_is_refused(short_timeout: float) -> None:
    server = PolicyServer(b"#" * (_policy_source._MAX_BYTES + 10))
    try:
        source = url_source(server.url)
        source.refresh()
        assert source.current() is None
        assert "byte limit" in (source.last_error or "")
    finally:
        server.close()


def test_url_that_lies_about_its_length_is_an_error(short_timeout: float) -> None:
    server = PolicyServer(b"schema_version: 1\n", declared=10_000)
    try:
        source = url_source(server.url)
        source.refresh()
        assert source.current() is None
        assert (source.last_error or "").startswith(server.url + ": ")
    finally:
        server.close()
