"""One logical SDK call: its span, what it sent, what came back, and the metrics it records when it ends."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import semconv as sc
from ._admission import release
from ._attributes import end_attributes, start_attributes
from ._config import Config
from ._errors import AdmissionTimeoutError
from ._limiter import Ticket
from ._policy_engine import PolicyOutcome
from ._request import RequestInfo
from ._response import UsageReading, field, fields, token_count
from ._safety import report_failure
from ._telemetry import Telemetry
from .catalog import catalog, cost_usd

if TYPE_CHECKING:

    from ._evaluation import Pair, RoleCall

__all__ = ["Call", "error_type", "status_description"]

log = logging.getLogger("otel_claude")
_warned_models: set[str] = set()
_BATCH_OPERATIONS = ("create_batch", "retrieve_batch", "cancel_batch")


def _transport_errors() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(timeouts, connection failures) of the SDK and of whichever httpx it is built on (httpx2 from 1.0)."""
    import anthropic

    timeouts: list[type] = [anthropic.APITimeoutError]
    connection: list[type] = [anthropic.APIConnectionError]
    for name in ("httpx2", "httpx"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        timeouts.append(module.TimeoutException)
        connection.append(module.TransportError)
    return tuple(timeouts), tuple(connection)


_TIMEOUTS, _CONNECTION = _transport_errors()


def error_type(err: BaseException) -> str:
    """`error.type`: the API's error type, or one name per transport failure whatever httpx the SDK uses, or the
    exception class (the same names as the SDK's own tracing, so both tell the same story)."""
    if isinstance(err, AdmissionTimeoutError):  # never sent: not the API's rate_limit_error
        return sc.ADMISSION_TIMEOUT_ERROR
    if isinstance(err, _TIMEOUTS):  # APITimeoutError subclasses APIConnectionError: test it first
        return "client_timeout_error"
    if isinstance(err, _CONNECTION):
        return "connection_error"
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and inner.get("type") in sc.API_ERROR_TYPES:
            return inner["type"]
    status = _http_status(err)
    if status is not None:
        return str(status)
    return type(err).__name__


def _http_status(err: BaseException) -> int | None:
    status = getattr(err, "status_code", None)
    return status if isinstance(status, int) and 400 <= status <= 599 else None


def status_description(error_type: str, err: BaseException) -> str:
    """The span's status description: the error type and HTTP status, never the error's message. An API error's
    message is its response body, and proxies and gateways echo the request there (prompt, API key, authorization
    header), so no part of it is safe to export."""
    status = _http_status(err)
    return f"{error_type} (HTTP {status})" if status is not None and str(status) != error_type else error_type


def _retries_from(response: Any, error: BaseException | None) -> int | None:
    """The SDK's retry count as sent on the last attempt (a connection error has a request but no response)."""
    try:
        request = response.request if response is not None else getattr(error, "request", None)
        value = request.headers.get("x-stainless-retry-count") if request is not None else None
    except Exception:  # httpx raises when a response has no request attached
        return None
    return int(value) if value is not None and value.isdigit() else None


class Call:
    """Created by the request hook before the SDK's retry loop; ended exactly once by `end()`.

    Holds typed state only; `_attributes` turns it into the span's attributes at start and at end.
    """

    __slots__ = (
        "admission_limit",
        "admission_timed_out",
        "admission_wait",
        "batch",
        "batch_id",
        "batch_status",
        "cancelled",
        "complete",
        "config",
        "content",
        "counted_tokens",
        "ended",
        "error_type",
        "finish_reason",
        "first_token_ns",
        "headers",
        "http_response",
        "operation",
        "output_content",
        "pair",
        "pair_spend",
        "policy",
        "provider",
        "request",
        "response_id",
        "response_model",
        "retries",
        "retry_of_policy",
        "role",
        "server_address",
        "server_port",
        "span",
        "start_ns",
        "streaming",
        "task",
        "tel",
        "ticket",
        "usage",
    )

    def __init__(
        self,
        tel: Telemetry,
        config: Config,
        operation: str,
        request: RequestInfo,
        *,
        provider: str,
        server: tuple[str, int],
        task: str | None,
        streaming: bool,
        policy: PolicyOutcome | None = None,
        content: dict[str, str] | None = None,
        pair: Pair | None = None,
        role_call: RoleCall | None = None,
    ) -> None:
        self.tel = tel
        self.config = config
        self.operation = operation
        self.request = request
        self.provider = provider
        self.server_address, self.server_port = server
        self.task = task
        self.streaming = streaming
        self.policy = policy
        self.content = content
        self.pair = pair  # sampled for paired evaluation
        # A call the evaluation made (shadow, judge): not the application's traffic; its cost goes to its pair.
        self.role = role_call.role if role_call is not None else None
        self.pair_spend = role_call.spend if role_call is not None else None
        self.batch = operation == "create_batch"
        self.start_ns = time.time_ns()
        self.first_token_ns = 0
        self.http_response: Any = None
        self.headers: Any = None
        self.retries: int | None = None
        self.retry_of_policy = False
        self.usage: UsageReading | None = None
        self.response_id: str | None = None
        self.response_model: str | None = None
        self.finish_reason: str | None = None
        self.output_content: str | None = None
        self.counted_tokens: int | None = None
        self.batch_id: str | None = None
        self.batch_status: str | None = None
        self.error_type: str | None = None
        self.cancelled = False
        self.complete = False
        self.ended = False
        self.admission_limit: str | None = None  # set with the rest when a policy limit admits the call
        self.admission_wait = 0.0
        self.admission_timed_out = False
        self.ticket: Ticket | None = None
        model = request.model
        name = f"{operation} {model}" if model else operation
        parent = role_call.parent if role_call is not None else None
        self.span = tel.tracer.start_span(
            name, context=parent, kind=SpanKind.CLIENT, attributes=start_attributes(self), start_time=self.start_ns
        )

    @property
    def policy_truncated(self) -> bool:
        """The answer stopped at a max_tokens the policy lowered, not at the caller's own."""
        return self.finish_reason == "max_tokens" and self.policy is not None and self.policy.lowered_max_tokens

    def activate(self) -> object:
        """Make the span current for the SDK's HTTP work (so transport spans nest under it)."""
        return otel_context.attach(trace.set_span_in_context(self.span))

    # -- results -------------------------------------------------------------------------------------------------

    def read_message(self, message: Any) -> None:
        """Take id, model, stop reason, usage (and content if opted in) from a Message or its JSON dict."""
        data = fields(message)
        value = data.get("id")
        if isinstance(value, str):
            self.response_id = value
        value = data.get("model")
        if isinstance(value, str):
            self.response_model = value
        value = data.get("stop_reason")
        if isinstance(value, str):
            self.finish_reason = value
        usage = data.get("usage")
        if usage is not None:
            reading = self.usage or UsageReading()
            reading.merge(usage)
            self.usage = reading
        if self.pair is not None and not self.streaming:
            self.pair.read(message)
        if self.config.capture_content:
            content = data.get("content")
            if content is not None:
                self.output_content = self.config.encode([{"role": "assistant", "content": _plain(content)}])

    def read_result(self, result: Any) -> None:
        """A non-streamed result of any traced operation."""
        if self.operation == sc.CHAT_OPERATION:
            self.read_message(result)
        elif self.operation == "count_tokens":
            tokens = field(result, "input_tokens")
            if tokens is not None:
                self.counted_tokens = token_count(tokens)
                if self.counted_tokens is None:
                    self.usage = UsageReading()
                    self.usage.mark_unreadable("input_tokens")
        elif self.operation in _BATCH_OPERATIONS:
            batch_id = field(result, "id")
            if isinstance(batch_id, str):
                self.batch_id = batch_id
            status = field(result, "processing_status")
            if isinstance(status, str):
                self.batch_status = status

    # -- ending --------------------------------------------------------------------------------------------------

    def end(self, error: BaseException | None = None, *, complete: bool | None = None) -> None:
        """End the span and record metrics, once; safe to call from finalizers and from any thread."""
        if self.ended:
            return
        self.ended = True
        attrs = duration = None
        try:
            attrs, duration = self._finish(error, complete)
        except Exception:
            report_failure("ending a span")
            try:
                self.span.end()
            except Exception:
                report_failure("ending a span")
        if self.ticket is not None:  # after the span, whatever happened to it: a slot is never kept
            release(self, attrs, duration)

    def _finish(self, error: BaseException | None, complete: bool | None) -> tuple[dict[str, Any], float]:
        end_ns = time.time_ns()
        response = self.http_response
        if error is not None:
            response = getattr(error, "response", None) or response
            # Anything but an Exception (CancelledError, GeneratorExit, KeyboardInterrupt) is the application
            # stopping the call, not the call failing: no error status, as the SDK's own tracing does.
            if isinstance(error, Exception):
                self.error_type = error_type(error)
            else:
                self.cancelled = True
        if response is not None:
            self.headers = getattr(response, "headers", None)
        if self.retries is None:
            self.retries = _retries_from(response, error)
        self.complete = bool(complete)
        usage = self.usage
        cost = self._cost(usage)
        ttft = per_token = None
        if self.first_token_ns:
            ttft = (self.first_token_ns - self.start_ns) / 1e9
            output = usage.output if usage is not None else None
            if output and output > 1 and complete:
                per_token = (end_ns - self.first_token_ns) / 1e9 / (output - 1)
        span = self.span
        attrs = end_attributes(self, cost, ttft, per_token)
        span.set_attributes(attrs)
        if self.error_type is not None:
            span.set_status(Status(StatusCode.ERROR, status_description(self.error_type, error)))  # type: ignore[arg-type]
        span.end(end_time=end_ns)
        duration = (end_ns - self.start_ns) / 1e9
        if self.role is not None:
            if cost is not None:
                read = bool(usage is not None and usage.cache_read)
                self.tel.evaluation.add(self.request.model, self.task, self.role, cost, self.pair_spend, read)
            return attrs, duration
        if self.response_id is not None:
            self.tel.calls_by_response_id.remember(self.response_id, span.get_span_context(), self.task,
                                                   self.request.model)
        self._record_metrics(duration, ttft, cost, attrs)
        if self.pair is not None:
            self.pair.done(self, error)
        return attrs, duration

    def _cost(self, usage: UsageReading | None) -> float | None:
        if usage is None or self.operation != sc.CHAT_OPERATION or (usage.input is None and usage.output is None):
            return None
        if usage.unreadable:  # a cost from the counts that could be read would be a wrong number, not a partial one
            return None
        model = self.response_model or self.request.model
        info = (self.config.catalog or catalog()).resolve(model)
        if info is None:
            if model and model not in _warned_models:
                _warned_models.add(model)
                log.warning("otel_claude: no price for model %r; its calls get no cost attribute", model)
            return None
        return cost_usd(info, usage.for_cost(batch=self.batch))

    def _record_metrics(self, duration: float, ttft: float | None, cost: float | None,
                        attrs: dict[str, Any]) -> None:
        tel = self.tel
        error = self.error_type
        labels = tel.labels(self.operation, self.provider, self.request.model, self.task, error)
        usage = self.usage if self.operation == sc.CHAT_OPERATION else None
        tokens_in = tokens_out = None
        if usage is not None and usage.unreadable:
            usage = None  # counts the API should never send: no token record, no cache counter (nor cost)
        if usage is not None:
            if usage.input is not None:
                tokens_in = usage.input + (usage.cache_read or 0) + (usage.cache_write or 0)
            tokens_out = usage.output
        tel.queue((duration, ttft, tokens_in, tokens_out, labels))
        if self.operation != sc.CHAT_OPERATION:
            return
        reason = self.finish_reason or ("error" if error is not None else "none")
        outcome = (reason, error, self.policy.version if self.policy is not None else None)
        cache = (usage.cache_read or 0, usage.cache_write or 0, usage.input or 0) if usage is not None else None
        tel.totals.add(labels.short, cost, outcome, cache)
        tel.headroom.note(self.request.model, attrs)
        if self.policy_truncated:
            tel.totals.add_truncation(labels.short, self.policy.version)  # type: ignore[union-attr]


def _plain(content: Any) -> Any:
    """Content blocks as JSON-ready data (SDK models dump themselves; dicts pass through)."""
    if isinstance(content, list):
        return [block.model_dump() if hasattr(block, "model_dump") else block for block in content]
    return content
