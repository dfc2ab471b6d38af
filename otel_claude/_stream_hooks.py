"""Hooks on stream classes: `close()` ends a watched stream's span, and old SDKs' MessageStream adopts the watch of
the Stream it replaces."""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from ._patches import Patches
from ._safety import report_failure
from ._streams import WATCH_KEY, watch_async, watch_sync

__all__ = ["patch_old_message_streams", "patch_stream_close"]


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
