"""Routing a call's result: a message ends the call now; a stream, or a raw response whose body is unread, ends it
later (on the stream's end, or when the raw response is parsed or dropped)."""

from __future__ import annotations

import importlib
import json
import weakref
from collections.abc import Callable
from typing import Any

from ._call import Call
from ._safety import report_failure
from ._stream_hooks import track_open
from ._streams import WATCH_KEY, StreamWatch, watch_async, watch_sync

__all__ = ["ResultRouter"]


def _response_classes() -> tuple[type, ...]:
    """The SDK's raw-response wrappers (`with_raw_response` / `with_streaming_response`), new and legacy."""
    found: list[type] = []
    for module_name, names in (("anthropic._response", ("BaseAPIResponse",)),
                               ("anthropic._legacy_response", ("LegacyAPIResponse",))):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        found += [getattr(module, name) for name in names if hasattr(module, name)]
    return tuple(found)


def _read_body(raw: Any) -> Any:
    """The JSON body of a raw response if it has been read already, else None (never reads it ourselves)."""
    try:
        content = raw.content
    except Exception:  # httpx ResponseNotRead: a streamed body the caller has not consumed
        return None
    try:
        return json.loads(content)
    except ValueError:
        return {}


class _DeferredParse:
    """Stands in for `_parse` on one raw response returned before its body was read: the call ends when the
    response is first parsed, or (unread) when the response dies.

    Set on that instance only, so the other calls, whose `_parse` runs once per call, pay nothing for it. It holds
    the response weakly: a cycle would leave an abandoned response for the cyclic GC, and its span open until then.
    """

    __slots__ = ("call", "response", "router")

    def __init__(self, router: ResultRouter, call: Call, response: Any) -> None:
        self.router = router
        self.call: Call | None = call
        self.response = weakref.ref(response)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        response = self.response()
        if response is None:  # unreachable in practice: the response is calling us
            raise RuntimeError("otel_claude: parsing a response that no longer exists")
        response.__dict__.pop("_parse", None)
        result = type(response)._parse(response, *args, **kwargs)
        call, self.call = self.call, None
        if call is not None:
            try:
                self.router.take(call, result)
            except Exception:
                report_failure("reading a parsed raw response")
        return result

    def __del__(self) -> None:
        if self.call is not None:
            self.call.end(None, complete=False)


class ResultRouter:
    def __init__(self) -> None:
        streaming = importlib.import_module("anthropic._streaming")
        self._stream_types = (streaming.Stream, streaming.AsyncStream)
        self._response_types = _response_classes()

    def succeed(self, call: Call, result: Any) -> Any:
        """Attach to or read the result; returns it unchanged."""
        try:
            self.take(call, result)
        except Exception:
            report_failure("reading a response")
            call.end(None, complete=False)
        return result

    def take(self, call: Call, result: Any) -> None:
        if isinstance(result, self._stream_types[0]):
            self._watch(call, result, watch_sync)
            return
        if isinstance(result, self._stream_types[1]):
            self._watch(call, result, watch_async)
            return
        # isinstance first: a failed getattr on a pydantic Message (the common result) raises inside pydantic.
        raw = getattr(result, "http_response", None) if isinstance(result, self._response_types) else None
        if raw is not None:
            call.http_response = raw
            body = _read_body(raw)
            if body is None:
                result.__dict__["_parse"] = _DeferredParse(self, call, result)
                return
            call.read_result(body)
            call.end()
            return
        call.read_result(result)
        call.end()

    def _watch(self, call: Call, stream: Any, wrap: Callable[[Any, StreamWatch], Any]) -> None:
        if call.http_response is None:
            call.http_response = getattr(stream, "response", None)
        watch = StreamWatch(call)
        inner = stream._iterator
        stream._iterator = wrap(inner, watch)
        stream.__dict__[WATCH_KEY] = watch
        track_open(stream)
