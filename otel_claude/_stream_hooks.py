"""Hooks on stream classes: `close()` ends a watched stream's span, and old SDKs' MessageStream adopts the watch of
the Stream it replaces.

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
from ._streams import WATCH_KEY, watch_async, watch_sync

__all__ = ["hook_open_streams", "patch_old_message_streams", "patch_stream_close", "track_open"]


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


def patch_old_message_streams(patches: Patches) -> bool:
    """SDKs up to about 0.50 build `.stream()`'s MessageStream from the response, discarding the Stream that
    `request` returned; the new stream must adopt that Stream's watch or the call would look abandoned."""
    try:
        module = importlib.import_module("anthropic.lib.streaming")
    except ImportError:
        return False
    patched = False
    for name in ("MessageStream", "AsyncMessageStream", "BetaMessageStream", "BetaAsyncMessageStream"):
        cls = getattr(module, name, None)
        if cls is not None and "response" in inspect.signature(cls.__init__).parameters:
            patches.patch(cls, "__init__", _adopting_init)
            # Their close() closes the response directly, not the raw stream: hook it too.
            patches.patch(cls, "close", _async_close if inspect.iscoroutinefunction(cls.close) else _sync_close)
            patched = True
    return patched


def _adopting_init(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def __init__(stream: Any, *args: Any, **kwargs: Any) -> None:
        original(stream, *args, **kwargs)
        response = kwargs.get("response")
        watch = response.__dict__.pop(WATCH_KEY, None) if response is not None else None
        if watch is not None:
            try:
                raw = stream._raw_stream
                wrap = watch_async if hasattr(raw._iterator, "__anext__") else watch_sync
                raw._iterator = wrap(raw._iterator, watch)
                raw.__dict__[WATCH_KEY] = watch
                stream.__dict__[WATCH_KEY] = watch
                track_open(stream)
            except Exception:
                report_failure("adopting a stream")

    return __init__


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
