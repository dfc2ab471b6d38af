"""Hooks on stream classes: `close()` ends a watched stream's span."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

from ._patches import Patches
from ._streams import WATCH_KEY

__all__ = ["patch_stream_close"]


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
