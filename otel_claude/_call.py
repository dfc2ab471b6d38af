"""One logical SDK call: its span, what it sent, what came back, and the metrics it records when it ends."""

from __future__ import annotations

import itertools
import json
import logging
import time
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._config import Config
from ._request import RequestInfo
from ._response import UsageReading, field, fields, header_attributes
from ._safety import report_failure
from ._telemetry import Telemetry
from .catalog import catalog, cost_usd

__all__ = ["Call"]

log = logging.getLogger("otel_claude")
_warned_models: set[str] = set()


def _error_type(err: BaseException) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and isinstance(inner.get("type"), str):
            return inner["type"]
    return type(err).__name__


def _retries_from(response: Any, error: BaseException | None) -> int | None:
    """The SDK's retry count as sent on the last attempt (a connection error has a request but no response)."""
    try:
        request = response.request if response is not None else getattr(error, "request", None)
        value = request.headers.get("x-stainless-retry-count") if request is not None else None
    except Exception:  # httpx raises when a response has no request attached
        return None
    return int(value) if value is not None and value.isdigit() else None


class Call:
    """Created by the request hook before the SDK's retry loop; ended exactly once by `end()`."""

    __slots__ = (
        "attrs",
        "batch",
        "config",
        "ended",
        "first_token_ns",
        "http_response",
        "initial_count",
        "operation",
        "request",
        "retries",
        "retry_of_policy",
        "span",
        "start_ns",
        "streaming",
        "tel",
        "usage",
    )

    def __init__(
        self,
        tel: Telemetry,
        config: Config,
        operation: str,
        request: RequestInfo,
        base_attrs: dict[str, Any],
        streaming: bool,
    ) -> None:
        self.tel = tel
        self.config = config
        self.operation = operation
        self.request = request
        self.streaming = streaming
        self.batch = False
        self.start_ns = time.time_ns()
        self.first_token_ns = 0
        self.http_response: Any = None
        self.retries: int | None = None
        self.retry_of_policy = False
        self.usage: UsageReading | None = None
        self.ended = False
        self.attrs: dict[str, Any] = base_attrs
        self.initial_count = len(base_attrs)
        model = request.model
        name = f"{operation} {model}" if model else operation
        self.span = tel.tracer.start_span(
            name, kind=SpanKind.CLIENT, attributes=base_attrs, start_time=self.start_ns
        )

    def activate(self) -> object:
        """Make the span current for the SDK's HTTP work (so transport spans nest under it)."""
        return otel_context.attach(trace.set_span_in_context(self.span))

    # -- results -------------------------------------------------------------------------------------------------

    def read_message(self, message: Any) -> None:
        """Take id, model, stop reason, usage (and content if opted in) from a Message or its JSON dict."""
        attrs = self.attrs
        data = fields(message)
        value = data.get("id")
        if isinstance(value, str):
            attrs["gen_ai.response.id"] = value
        value = data.get("model")
        if isinstance(value, str):
            attrs["gen_ai.response.model"] = value
        value = data.get("stop_reason")
        if isinstance(value, str):
            attrs["gen_ai.response.finish_reasons"] = (value,)
        usage = data.get("usage")
        if usage is not None:
            reading = self.usage or UsageReading()
            reading.merge(usage)
            self.usage = reading
        if self.config.capture_content:
            content = data.get("content")
            if content is not None:
                attrs["gen_ai.output.messages"] = self.config.clip(
                    json.dumps([{"role": "assistant", "content": _plain(content)}], default=str)
                )

    def read_result(self, result: Any) -> None:
        """Attributes of a non-streamed result of any traced operation."""
        if self.operation == "chat":
            self.read_message(result)
        elif self.operation == "count_tokens":
            tokens = field(result, "input_tokens")
            if isinstance(tokens, int):
                self.attrs["gen_ai.usage.input_tokens"] = tokens
        elif self.operation in ("create_batch", "retrieve_batch", "cancel_batch"):
            batch_id = field(result, "id")
            if isinstance(batch_id, str):
                self.attrs["otel_claude.batch.id"] = batch_id
            status = field(result, "processing_status")
            if isinstance(status, str):
                self.attrs["otel_claude.batch.status"] = status

    # -- ending --------------------------------------------------------------------------------------------------

    def end(self, error: BaseException | None = None, *, complete: bool | None = None) -> None:
        """End the span and record metrics, once; safe to call from finalizers and from any thread."""
        if self.ended:
            return
        self.ended = True
        try:
            self._finish(error, complete)
        except Exception:
            report_failure("ending a span")
            try:
                self.span.end()
            except Exception:
                report_failure("ending a span")

    def _finish(self, error: BaseException | None, complete: bool | None) -> None:
        end_ns = time.time_ns()
        attrs = self.attrs
        response = self.http_response
        if error is not None:
            response = getattr(error, "response", None) or response
        if response is not None:
            header_attributes(getattr(response, "headers", None), attrs)
        if self.retries is None:
            self.retries = _retries_from(response, error)
        if self.retries is not None:
            attrs["otel_claude.retries"] = self.retries
        if self.streaming and self.operation == "chat":
            attrs["otel_claude.stream.complete"] = bool(complete)
        usage = self.usage
        if usage is not None:
            usage.attributes(attrs)
        cost = self._cost(usage)
        if cost is not None:
            attrs["otel_claude.cost_usd"] = cost
        ttft = None
        if self.first_token_ns:
            ttft = (self.first_token_ns - self.start_ns) / 1e9
            attrs["gen_ai.response.time_to_first_chunk"] = ttft
            output = usage.output if usage is not None else None
            if output and output > 1 and complete:
                attrs["otel_claude.time_per_output_token"] = (end_ns - self.first_token_ns) / 1e9 / (output - 1)
        error_type = None
        if error is not None:
            error_type = _error_type(error)
            attrs["error.type"] = error_type
        span = self.span
        # The span already has the start attributes; sending them again would re-validate each one.
        span.set_attributes(dict(itertools.islice(attrs.items(), self.initial_count, None)))
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, f"{error_type}: {error}"[:500]))
        span.end(end_time=end_ns)
        response_id = attrs.get("gen_ai.response.id")
        if response_id is not None:
            self.tel.calls_by_response_id.remember(response_id, span.get_span_context(), attrs.get("otel_claude.task"))
        self._record_metrics((end_ns - self.start_ns) / 1e9, ttft, cost, error_type)

    def _cost(self, usage: UsageReading | None) -> float | None:
        if usage is None or self.operation != "chat" or (usage.input is None and usage.output is None):
            return None
        model = self.attrs.get("gen_ai.response.model") or self.request.model
        info = (self.config.catalog or catalog()).resolve(model)
        if info is None:
            if model and model not in _warned_models:
                _warned_models.add(model)
                log.warning("otel_claude: no price for model %r; its calls get no cost attribute", model)
            return None
        return cost_usd(info, usage.for_cost(batch=self.batch))

    def _record_metrics(self, duration: float, ttft: float | None, cost: float | None, error_type: str | None) -> None:
        attrs = self.attrs
        tel = self.tel
        labels = tel.labels(
            self.operation, attrs.get("gen_ai.provider.name"), attrs.get("gen_ai.request.model"),
            attrs.get("otel_claude.task"), error_type,
        )
        usage = self.usage if self.operation == "chat" else None
        tokens_in = attrs["gen_ai.usage.input_tokens"] if usage is not None and usage.input is not None else None
        tokens_out = usage.output if usage is not None else None
        tel.queue((duration, ttft, tokens_in, tokens_out, labels))
        if self.operation != "chat":
            return
        finish = attrs.get("gen_ai.response.finish_reasons")
        reason = finish[0] if finish else ("error" if error_type is not None else "none")
        outcome = (reason, error_type, attrs.get("otel_claude.policy.version"))
        cache = (usage.cache_read or 0, usage.cache_write or 0, usage.input or 0) if usage is not None else None
        tel.totals.add(labels.short, cost, outcome, cache)


def _plain(content: Any) -> Any:
    """Content blocks as JSON-ready data (SDK models dump themselves; dicts pass through)."""
    if isinstance(content, list):
        return [block.model_dump() if hasattr(block, "model_dump") else block for block in content]
    return content
