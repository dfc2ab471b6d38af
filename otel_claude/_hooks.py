"""The patches: one hook around `SyncAPIClient.request` / `AsyncAPIClient.request`, which every call path goes
through once per logical call (outside the SDK's retry loop), plus small helpers for what `request` cannot see.

| patched | why |
|---|---|
| `{Sync,Async}APIClient.request` | one span per logical call, for every resource, client class and response mode |
| `{Sync,Async}APIClient._process_response` | response headers and retry count of a successful parsed call |
| `Stream.close` / `AsyncStream.close` | end a stream's span when the caller closes it early (`_stream_hooks`) |
| `_parse` of one raw response (instance only) | finish a raw response whose body was not read when returned |
| `BaseClient._tracer` (SDK >= 1.14) | suppress the SDK's own span so each call has exactly one |
| `BaseClient._should_retry` (with a policy) | a 429/529 attempt reaches the call's limiter before the SDK retries |

Starting a call is `_start`'s job, routing its result `_results`', patch bookkeeping `_patches`', waiting for
admission under the policy's limits `_admission`'s (before each pass through the SDK, inside the call's span).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context

from ._admission import congestion
from ._call import Call
from ._config import Config
from ._evaluation import Evaluator
from ._neighbours import warn_once_about_others
from ._patches import Patches
from ._policy_engine import PolicyEngine, write_request
from ._results import ResultRouter
from ._safety import report_failure
from ._start import CallStarter
from ._stream_hooks import hook_open_streams, patch_stream_close
from ._telemetry import Telemetry

__all__ = ["Hooks"]

_CURRENT: ContextVar[Call | None] = ContextVar("otel_claude_call", default=None)


class Hooks:
    def __init__(
        self, telemetry: Telemetry, config: Config, policy: PolicyEngine | None = None,
        evaluator: Evaluator | None = None,
    ) -> None:
        self.tel = telemetry
        self.config = config
        self.policy = policy
        self.evaluator = evaluator
        self.admission = policy.admission if policy is not None else None
        self.starter = CallStarter(telemetry, config, policy, evaluator)
        self.results = ResultRouter()
        self._patches = Patches()
        self._sdk = importlib.import_module("anthropic._base_client")
        # Another Anthropic instrumentation is looked for at install and again at the first call (under
        # opentelemetry-instrument it may be loaded after this one).
        self.looked_for_others = False

    def install(self) -> None:
        sdk, patches = self._sdk, self._patches
        patches.patch(sdk.SyncAPIClient, "request", self._sync_request)
        patches.patch(sdk.AsyncAPIClient, "request", self._async_request)
        patches.patch(sdk.SyncAPIClient, "_process_response", _sync_process_response)
        patches.patch(sdk.AsyncAPIClient, "_process_response", _async_process_response)
        patch_stream_close(patches)
        if self.admission is not None:
            patches.patch(sdk.BaseClient, "_should_retry", _should_retry)
            self.tel.watch_admission(self.admission)
        if not self.config.keep_native_spans and isinstance(sdk.BaseClient.__dict__.get("_tracer"), property):
            patches.patch(sdk.BaseClient, "_tracer", lambda _orig: property(lambda _self: None))
        try:
            self.looked_for_others = warn_once_about_others()
        except Exception:
            report_failure("looking for other Anthropic instrumentations")

    def look_for_others(self) -> None:
        self.looked_for_others = True
        try:
            warn_once_about_others()
        except Exception:
            report_failure("looking for other Anthropic instrumentations")

    def uninstall(self) -> None:
        self._patches.restore()
        hook_open_streams()

    # -- per call ------------------------------------------------------------------------------------------------

    def after(self, client: Any, options: Any, stream: bool, call: Call, result: Any) -> Call | None:
        """Finish `call` from its result; returns the safety-net retry's call when one is due."""
        self.results.succeed(call, result)
        return self.safety_retry(client, options, stream, call, result)

    def safety_retry(self, client: Any, options: Any, stream: bool, call: Call, result: Any) -> Call | None:
        """A new call re-sending as the caller asked, when the policy's lower cap truncated this one.

        Whatever the result's type (a Message, a parsed message, a raw response): the call has read it when it has
        ended here. A stream, or a raw response whose body the caller has yet to read, has not ended: it reaches the
        caller as it is, and its span says the policy truncated it.
        """
        if self.policy is None or call.retry_of_policy or not call.ended:
            return None
        try:
            changes = self.policy.safety_retry(call.policy, call.finish_reason, bool(stream))
            if changes is None:
                return None
            # Through the policy's own writer: it knows that extra_body keys override the named parameters.
            write_request(options, changes)
            retry = self.starter.begin(client, options, stream, retry_of=call)
            if retry is not None:
                retry.retry_of_policy = True
            return retry
        except Exception:
            report_failure("preparing the safety-net retry")
            return None

    # -- the patched methods -------------------------------------------------------------------------------------

    def _sync_request(self, original: Callable[..., Any]) -> Callable[..., Any]:
        hooks = self
        begin = self.starter.begin
        admission = self.admission

        @functools.wraps(original)
        def request(client: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
            if not hooks.looked_for_others:
                hooks.look_for_others()
            stream = kwargs.get("stream", False)
            call = begin(client, options, stream)
            if call is None:
                return original(client, cast_to, options, *args, **kwargs)
            while True:  # a second pass only for the policy's safety-net retry
                tokens = _enter(call)
                try:
                    if admission is not None and admission.active:
                        admission.admit_sync(call, client)
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
        begin = self.starter.begin
        admission = self.admission

        @functools.wraps(original)
        async def request(client: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
            if not hooks.looked_for_others:
                hooks.look_for_others()
            stream = kwargs.get("stream", False)
            call = begin(client, options, stream)
            if call is None:
                return await original(client, cast_to, options, *args, **kwargs)
            while True:  # a second pass only for the policy's safety-net retry
                tokens = _enter(call)
                try:
                    if admission is not None and admission.active:
                        await admission.admit_async(call, client)
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


def _sync_process_response(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def process_response(client: Any, *args: Any, **kwargs: Any) -> Any:
        _note_response(kwargs)
        return original(client, *args, **kwargs)

    return process_response


def _async_process_response(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def process_response(client: Any, *args: Any, **kwargs: Any) -> Any:
        _note_response(kwargs)
        return await original(client, *args, **kwargs)

    return process_response


def _should_retry(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def should_retry(client: Any, response: Any) -> Any:
        retry = original(client, response)
        call = _CURRENT.get()
        if call is not None and call.ticket is not None:
            congestion(call, response)
        return retry

    return should_retry


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
