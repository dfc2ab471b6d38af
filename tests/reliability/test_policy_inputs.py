"""Hostile policy inputs are rejected with an error naming the source, within bounded time and memory.

The time bound here is a safety net (a hang or a runaway parse), not a performance goal: docs/reliability.md
lists the measured figures.
"""

from __future__ import annotations

import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from otel_claude import _policy_source
from otel_claude._policy_source import FileSource, UrlSource
from otel_claude.policy import PolicyError, load_policy_text

BOUND_S = 5.0
BOUND_MB = 50.0


def laughs(levels: int) -> str:
    """The billion-laughs alias bomb: each level is nine aliases of the one before."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


HOSTILE = {
    "billion laughs": (laughs(9), "alias bomb"),
    "quadratic blowup (one big alias, many uses)": (
        "a: &a [" + ",".join(["x"] * 5000) + "]\nb: [" + ",".join(["*a"] * 5000) + "]\n", "alias bomb"),
    "deep flow nesting": ("[" * 10_000 + "]" * 10_000, "nests deeper"),
    "deep block nesting": ("".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v\n", "nests deeper"),
    "over the size limit": ("x" * 5_000_000, "larger than the limit"),
    "python object tag": ("!!python/object/apply:os.system ['true']\n", "not valid YAML"),
    "duplicate keys": ("schema_version: 1\nversion: a\nversion: b\nrules: []\n", "duplicate key"),
    "binary junk": ("\x00\x01\x02\ufffe" * 1000, "not valid YAML"),
    "wrong types everywhere": ("schema_version: '1'\nversion: [1]\nrules: {a: 1}\n", "schema_version"),
    "wide list of junk rules": ("schema_version: 1\nversion: v\nrules:\n" + "- 1\n" * 5_000, "rules"),
}


def measured(action: Callable[[], Any]) -> tuple[float, float, BaseException | None]:
    """(seconds, peak MB allocated, exception raised) for one action."""
    tracemalloc.start()
    start = time.perf_counter()
    error: BaseException | None = None
    try:
        action()
    except Exception as err:
        error = err
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return seconds, peak, error


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_text_rejected_with_located_error(name: str) -> None:
    text, fragment = HOSTILE[name]
    seconds, peak, error = measured(lambda: load_policy_text(text, f"policy:{name}"))
    assert isinstance(error, PolicyError), error
    assert str(error).startswith(f"policy:{name}: ")
    assert fragment in str(error)
    assert seconds < BOUND_S
    assert peak < BOUND_MB


@pytest.mark.parametrize("name", ["billion laughs", "deep flow nesting", "binary junk"])
def test_hostile_file_keeps_last_good_policy(tmp_path: Path, name: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("schema_version: 1\nversion: good\nrules: []\n")
    source = FileSource(str(path), reload_interval=3600)
    assert source.current() is not None and source.current().version == "good"
    path.write_bytes(HOSTILE[name][0].encode("utf-8", errors="surrogatepass") + b"\n# changed\n")
    seconds, _, error = measured(source.refresh)
    assert error is None  # a file source logs and keeps going; it never raises into the call path
    assert source.current().version == "good"
    assert source.last_error is not None and str(path) in source.last_error
    assert seconds < BOUND_S


def test_huge_file_is_refused_by_size_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    with path.open("wb") as handle:  # sparse: 2 GB on paper, nothing on disk
        handle.truncate(2_000_000_000)
    seconds, peak, error = measured(lambda: FileSource(str(path), reload_interval=3600))
    assert error is None
    assert seconds < BOUND_S and peak < 1.0


# -- slow and hostile policy URLs -----------------------------------------------------------------------------------


class PolicyServer:
    """Serves `body` for GET, `drip` seconds between bytes (a slowloris), or `size` bytes of filler."""

    def __init__(self, body: bytes, drip: float = 0.0, declared: int | None = None) -> None:
        self.stop = threading.Event()
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
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()

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


def refresh_within(source: UrlSource, seconds: float) -> bool:
    """Run one refresh on its own thread; True if it returned within `seconds`."""
    worker = threading.Thread(target=source.refresh, daemon=True)
    worker.start()
    worker.join(timeout=seconds)
    return not worker.is_alive()


class ManualUrlSource(UrlSource):
    """A URL source whose poll thread does nothing: the test drives refresh() itself."""

    def _poll(self) -> None:
        pass


def url_source(url: str) -> UrlSource:
    return ManualUrlSource(url, reload_interval=3600)


def test_slow_drip_url_gives_up_within_its_timeout(short_timeout: float) -> None:
    server = PolicyServer(b"schema_version: 1\nversion: slow\nrules: []\n" * 20, drip=0.05)
    try:
        source = url_source(server.url)
        assert refresh_within(source, 4 * short_timeout + 1), "a byte every 50 ms must not hold the poller forever"
        assert source.current() is None
        assert source.last_error is not None and server.url in source.last_error
    finally:
        server.close()


def test_url_over_the_size_limit_is_refused(short_timeout: float) -> None:
    server = PolicyServer(b"#" * (_policy_source._MAX_BYTES + 10))
    try:
        source = url_source(server.url)
        assert refresh_within(source, BOUND_S)
        assert source.current() is None
        assert "byte limit" in (source.last_error or "")
    finally:
        server.close()


def test_url_that_lies_about_its_length_is_an_error(short_timeout: float) -> None:
    server = PolicyServer(b"schema_version: 1\n", declared=10_000)
    try:
        source = url_source(server.url)
        assert refresh_within(source, BOUND_S)
        assert source.current() is None
        assert server.url in (source.last_error or "")
    finally:
        server.close()
