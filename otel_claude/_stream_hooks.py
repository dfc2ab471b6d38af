"""Hooks on stream classes: `close()` ends a watched stream's span.

`uninstrument()` puts the classes' own `close()` back while streams opened before may still be open: those streams
get the hook on the instance instead, so closing one later still ends its span (instead of leaving it open until
the stream is garbage-collected).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import weakref
from collections.abc import Callable
from typing import Any

from ._patches import Patches
from ._safety import report_failure
from ._streams import WATCH_KEY

__all__ = ["hook_open_streams", "patch_stream_close", "track_open"]


# Watched streams still alive, by id: weak references, dropped when the stream is.
_open: dict[int, weakref.ref[Any]] = {}


def track_open(stream: Any) -> None:
    key = id(stream)
    _open[key] = weakref.ref(stream, lambda _ref: _open.pop(key, None))


def hook_open_streams() -> None:
    """Give each open watched stream a `close()` of its own that ends its span (the class's hook is gone)."""
    for ref in list(_open.values()):
        stream = ref()
        watch = stream.__dict__.get(WATCH_KEY) if stream is not None else None
        if watch is None or watch.call.ended:
            continue
        try:
            stream.__dict__["close"] = _instance_close(stream, watch)
        except Exception:
            report_failure("hooking an open stream's close")


def _instance_close(stream: Any, watch: Any) -> Callable[[], Any]:
    original = type(stream).close
    ref = weakref.ref(stream)  # the instance holds this function: a strong reference back would make a cycle

    if inspect.iscoroutinefunction(original):
        async def aclose() -> None:
            try:
                await original(ref())
            finally:
                watch.closed()

        return aclose

    def close() -> None:
        try:
            original(ref())
        finally:
            watch.closed()

    return close


def patch_stream_close(patches: Patches) -> None:
    streaming = importlib.import_module("anthropic._streaming")
    patches.patch(streaming.Stream, "close", _sync_close)
    patches.patch(streaming.AsyncStream, "close", _async_close)


def _sync_close(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def close(stream: Any) -> None:
        try:
            original(stream)
        finally:
            watch = stream.__dict__.get(WATCH_KEY)
            if watch is not None:
                watch.closed()

    return close


def _async_close(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def close(stream: Any) -> None:
        try:
            await original(stream)
        finally:
            watch = stream.__dict__.get(WATCH_KEY)
            if watch is not None:
                watch.closed()

    return close
