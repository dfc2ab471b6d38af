"""The patches: one hook around `SyncAPIClient.request` / `AsyncAPIClient.request`, which every call path goes
through once per logical call (outside the SDK's retry loop), plus small helpers for what `request` cannot see.

| patched | why |
|---|---|
| `{Sync,Async}APIClient.request` | one span per logical call, for every resource, client class and response mode |
| `{Sync,Async}APIClient._process_response` | response headers and retry count of a successful parsed call |
| `Stream.close` / `AsyncStream.close` | end a stream's span when the caller closes it early |
| `_parse` of one raw response (instance only) | finish a raw response whose body was not read when returned |
| `BaseClient._tracer` (SDK >= 1.14) | suppress the SDK's own span so each call has exactly one |

Patches sit on classes, so clients created before `instrument()` are covered, and cached `with_raw_response`
bound methods reach them too. `uninstall()` puts back exactly what each class had.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context

from ._call import Call
from ._config import Config
from ._policy_engine import write_request
from ._request import RequestInfo, operation_of, summarize_request
from ._safety import report_failure
from ._streams import WATCH_KEY, StreamWatch, watch_async, watch_sync
from ._task import current_task
from ._telemetry import Telemetry

__all__ = ["Hooks"]

_CURRENT: ContextVar[Call | None] = ContextVar("otel_claude_call", default=None)
_MISSING = object()
_NO_REQUEST = RequestInfo(None, {}, None, 0, 0, 0)


_PROVIDERS: dict[type, str] = {}


def _provider_name(client: Any) -> str:
    cls = type(client)
    name = _PROVIDERS.get(cls)
    if name is None:
        # SDKs >= 1.14 name their provider on the client class; older ones only in the class name.
        name = getattr(cls, "_gen_ai_provider_name", None)
        if not isinstance(name, str):
            name = "aws.bedrock" if "Bedrock" in cls.__name__ else "gcp.vertex_ai" if "Vertex" in cls.__name__ \
                else "anthropic"
        _PROVIDERS[cls] = name
    return name


class _DeferredParse:
    """Stands in for `_parse` on one raw response returned before its body was read: the call ends when the
    response is first parsed, or (unread) when the response dies.

    Set on that instance only, so the other calls, whose `_parse` runs once per call, pay nothing for it. It holds
    the response weakly: a cycle would leave an abandoned response for the cyclic GC, and its span open until then.
    """

    __slots__ = ("call", "hooks", "response")

    def __init__(self, hooks: Hooks, call: Call, response: Any) -> None:
        self.hooks = hooks
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
                self.hooks._take(call, result)
            except Exception:
                report_failure("reading a parsed raw response")
        return result

    def __del__(self) -> None:
        if self.call is not None:
            self.call.end(None, complete=False)


class Hooks:
    def __init__(self, telemetry: Telemetry, config: Config, policy: Any = None) -> None:
        self.tel = telemetry
        self.config = config
        self.policy = policy
        self._saved: list[tuple[type, str, Any]] = []
        self._adopting = False
        self._sdk = importlib.import_module("anthropic._base_client")
        streaming = importlib.import_module("anthropic._streaming")
        self._stream_types = (streaming.Stream, streaming.AsyncStream)
        self._response_types = _response_classes()

    # -- installing ----------------------------------------------------------------------------------------------

    def _patch(self, cls: type, name: str, make: Callable[[Any], Any]) -> None:
        original = cls.__dict__.get(name, _MISSING)
        current = getattr(cls, name)
        self._saved.append((cls, name, original))
        setattr(cls, name, make(current))

    def install(self) -> None:
        sdk = self._sdk
        self._patch(sdk.SyncAPIClient, "request", self._sync_request)
        self._patch(sdk.AsyncAPIClient, "request", self._async_request)
        self._patch(sdk.SyncAPIClient, "_process_response", self._sync_process_response)
        self._patch(sdk.AsyncAPIClient, "_process_response", self._async_process_response)
        sync_stream, async_stream = self._stream_types
        self._patch(sync_stream, "close", _sync_close)
        self._patch(async_stream, "close", _async_close)
        self._adopting = self._patch_old_message_streams()
        if not self.config.keep_native_spans and isinstance(sdk.BaseClient.__dict__.get("_tracer"), property):
            self._patch(sdk.BaseClient, "_tracer", lambda _orig: property(lambda _self: None))

    def _patch_old_message_streams(self) -> bool:
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
                self._patch(cls, "__init__", _adopting_init)
                # Their close() closes the response directly, not the raw stream: hook it too.
                self._patch(cls, "close", _async_close if inspect.iscoroutinefunction(cls.close) else _sync_close)
                patched = True
        return patched

    def uninstall(self) -> None:
        for cls, name, original in reversed(self._saved):
            if original is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, original)
        self._saved.clear()

    # -- per call ------------------------------------------------------------------------------------------------

    def begin(self, client: Any, options: Any, stream: bool, retry_of: Call | None = None) -> Call | None:
        """Start the span for a traced request (applying the policy first); None for untraced endpoints.

        `retry_of`: the policy's safety net is re-sending a truncated call with the caller's max_tokens; the policy
        is not applied again and the span says so.
        """
        try:
            operation = operation_of(options.method, options.url)
            if operation is None:
                return None
            body = _merged_body(options)
            info = summarize_request(body) if operation in ("chat", "count_tokens") else _NO_REQUEST
            url = client.base_url
            attrs: dict[str, Any] = {
                "gen_ai.operation.name": operation,
                "gen_ai.provider.name": _provider_name(client),
                "server.address": url.host,
                "server.port": url.port or (443 if url.scheme == "https" else 80),
            }
            task = current_task()
            if task is not None:
                attrs["otel_claude.task"] = task
            if retry_of is not None:
                attrs.update({k: v for k, v in retry_of.attrs.items() if k.startswith("otel_claude.policy.")})
                attrs["otel_claude.policy.safety_retry"] = True
                attrs["otel_claude.policy.applied_max_tokens"] = body.get("max_tokens")
            elif self.policy is not None and operation == "chat":
                info = self.policy.apply(options, body, info, task, attrs)
            attrs.update(info.attributes)
            if operation == "chat":
                attrs["gen_ai.request.stream"] = bool(stream)
                if info.prefix_fingerprint is not None:
                    attrs["otel_claude.prefix.fingerprint"] = info.prefix_fingerprint
                    attrs["otel_claude.prefix.tokens_estimate"] = info.prefix_tokens_estimate
                attrs["otel_claude.input.tokens_estimate"] = info.input_tokens_estimate
                attrs["otel_claude.cache.breakpoints"] = info.breakpoints
                if self.config.capture_content:
                    sent = _merged_body(options)  # after the policy: what is actually sent
                    if isinstance(sent, dict):
                        self._capture_request(sent, attrs)
            call = Call(self.tel, self.config, operation, info, attrs, bool(stream))
            if operation == "create_batch":
                call.batch = True
            return call
        except Exception:
            report_failure("starting a span")
            return None

    def after(self, client: Any, options: Any, stream: bool, call: Call, result: Any) -> Call | None:
        """Finish `call` from its result; returns the safety-net retry's call when one is due."""
        self.succeed(call, result)
        return self.safety_retry(client, options, stream, call, result)

    def safety_retry(self, client: Any, options: Any, stream: bool, call: Call, result: Any) -> Call | None:
        """A new call re-sending with the caller's max_tokens, when the policy's lower cap truncated this one."""
        if self.policy is None or call.retry_of_policy or not hasattr(result, "stop_reason"):
            return None
        try:
            tokens = self.policy.safety_retry_tokens(call.attrs, bool(stream))
            if tokens is None:
                return None
            # Through the policy's own writer: it knows that extra_body keys override the named parameters.
            write_request(options, {"max_tokens": tokens})
            retry = self.begin(client, options, stream, retry_of=call)
            if retry is not None:
                retry.retry_of_policy = True
            return retry
        except Exception:
            report_failure("preparing the safety-net retry")
            return None

    def _capture_request(self, body: dict[str, Any], attrs: dict[str, Any]) -> None:
        clip = self.config.clip
        if body.get("messages") is not None:
            attrs["gen_ai.input.messages"] = clip(json.dumps(body["messages"], default=str))
        if body.get("system") is not None:
            attrs["gen_ai.system_instructions"] = clip(json.dumps(body["system"], default=str))
        if body.get("tools") is not None:
            attrs["gen_ai.tool.definitions"] = clip(json.dumps(body["tools"], default=str))

    def succeed(self, call: Call, result: Any) -> Any:
        """Attach to or read the result; returns it unchanged."""
        try:
            self._take(call, result)
        except Exception:
            report_failure("reading a response")
            call.end(None, complete=False)
        return result

    def _take(self, call: Call, result: Any) -> None:
        if isinstance(result, self._stream_types[0]):
            self._watch(call, result, watch_sync)
            return
        if isinstance(result, self._stream_types[1]):
            self._watch(call, result, watch_async)
            return
        if call.streaming and hasattr(result, "_iterator") and hasattr(result, "response"):
            # SDKs before ~0.50 return their own MessageStream class (not a Stream subclass) from `.stream()`.
            is_async = hasattr(result._iterator, "__anext__")
            self._watch(call, result, watch_async if is_async else watch_sync)
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
        if self._adopting:
            stream.response.__dict__[WATCH_KEY] = watch

    # -- the patched methods -------------------------------------------------------------------------------------

    def _sync_request(self, original: Callable[..., Any]) -> Callable[..., Any]:
        hooks = self

        @functools.wraps(original)
        def request(client: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
            stream = kwargs.get("stream", False)
            call = hooks.begin(client, options, stream)
            if call is None:
                return original(client, cast_to, options, *args, **kwargs)
            while True:  # a second pass only for the policy's safety-net retry
                tokens = _enter(call)
                try:
                    result = original(client, cast_to, options, *args, **kwargs)
                except BaseException as err:
                    call.end(err)
                    raise
                finally:
                    _leave(tokens)
                call = hooks.after(client, options, stream, call, result)
                if call is None:
                    return result

        return request

    def _async_request(self, original: Callable[..., Any]) -> Callable[..., Any]:
        hooks = self

        @functools.wraps(original)
        async def request(client: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
            stream = kwargs.get("stream", False)
            call = hooks.begin(client, options, stream)
            if call is None:
                return await original(client, cast_to, options, *args, **kwargs)
            while True:  # a second pass only for the policy's safety-net retry
                tokens = _enter(call)
                try:
                    result = await original(client, cast_to, options, *args, **kwargs)
                except BaseException as err:
                    call.end(err)
                    raise
                finally:
                    _leave(tokens)
                call = hooks.after(client, options, stream, call, result)
                if call is None:
                    return result

        return request

    @staticmethod
    def _sync_process_response(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def process_response(client: Any, *args: Any, **kwargs: Any) -> Any:
            _note_response(kwargs)
            return original(client, *args, **kwargs)

        return process_response

    @staticmethod
    def _async_process_response(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        async def process_response(client: Any, *args: Any, **kwargs: Any) -> Any:
            _note_response(kwargs)
            return await original(client, *args, **kwargs)

        return process_response


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


def _note_response(kwargs: dict[str, Any]) -> None:
    """The final HTTP response and retry count of the current call, as `_process_response` receives them."""
    call = _CURRENT.get()
    if call is not None:
        call.http_response = kwargs.get("response")
        call.retries = kwargs.get("retries_taken")


def _enter(call: Call) -> tuple[Any, object]:
    """Make `call` current for `_process_response` and its span current for the SDK's HTTP work."""
    return _CURRENT.set(call), call.activate()


def _leave(tokens: tuple[Any, object]) -> None:
    otel_context.detach(tokens[1])
    _CURRENT.reset(tokens[0])


def _merged_body(options: Any) -> Any:
    """The body as it will be sent: `extra_body` keys override the named parameters."""
    extra = getattr(options, "extra_json", None)
    body = options.json_data
    if extra and isinstance(body, dict):
        return {**body, **extra}
    return body


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
