"""From one call's typed state to its span attributes: the only place the instrumentor writes attribute names.

A call is read into typed fields as it goes (`RequestInfo` from the request, `PolicyOutcome` from the policy,
response fields, `UsageReading`, headers); `start_attributes` and `end_attributes` turn them into the attributes the
span starts and ends with, as docs/telemetry.md lists them (`otel_claude.semconv.ATTRIBUTES`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import semconv as sc
from ._response import UsageReading, to_int64

if TYPE_CHECKING:
    from ._call import Call
    from ._policy_engine import PolicyOutcome
    from ._request import RequestInfo

__all__ = ["content_attributes", "end_attributes", "header_attributes", "start_attributes"]


def start_attributes(call: Call) -> dict[str, Any]:
    """What is known before the request is sent; the span starts with these (samplers see them)."""
    attrs: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: call.operation,
        sc.GEN_AI_PROVIDER_NAME: call.provider,
        sc.SERVER_ADDRESS: call.server_address,
        sc.SERVER_PORT: call.server_port,
    }
    if call.task is not None:
        attrs[sc.TASK] = call.task
    if call.role is not None:
        attrs[sc.EVALUATION_ROLE] = call.role
    if call.policy is not None:
        _policy_attributes(call.policy, attrs)
    _request_attributes(call.request, attrs)
    if call.operation == sc.CHAT_OPERATION:
        info = call.request
        attrs[sc.GEN_AI_REQUEST_STREAM] = call.streaming
        if info.prefix_fingerprint is not None:
            attrs[sc.PREFIX_FINGERPRINT] = info.prefix_fingerprint
            attrs[sc.PREFIX_TOKENS_ESTIMATE] = info.prefix_tokens_estimate
        attrs[sc.INPUT_TOKENS_ESTIMATE] = info.input_tokens_estimate
        attrs[sc.CACHE_BREAKPOINTS] = info.breakpoints
        if info.conversation_fingerprint is not None and info.turns is not None:
            attrs[sc.CONVERSATION_FINGERPRINT] = info.conversation_fingerprint
            attrs[sc.CONVERSATION_TURN] = info.turns.turn
            if info.parent_fingerprint is not None:
                attrs[sc.CONVERSATION_PARENT] = info.parent_fingerprint
                attrs[sc.CONVERSATION_HISTORY_TOKENS] = info.history_tokens_estimate
    if call.content is not None:
        attrs.update(call.content)
    return attrs


def _request_attributes(info: RequestInfo, attrs: dict[str, Any]) -> None:
    if info.model is not None:
        attrs[sc.GEN_AI_REQUEST_MODEL] = info.model
    if info.max_tokens is not None:
        attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] = info.max_tokens
    if info.temperature is not None:
        attrs[sc.GEN_AI_REQUEST_TEMPERATURE] = info.temperature
    if info.top_p is not None:
        attrs[sc.GEN_AI_REQUEST_TOP_P] = info.top_p
    if info.top_k is not None:
        attrs[sc.GEN_AI_REQUEST_TOP_K] = info.top_k
    if info.stop_sequences is not None:
        attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = info.stop_sequences


def _policy_attributes(outcome: PolicyOutcome, attrs: dict[str, Any]) -> None:
    attrs[sc.POLICY_VERSION] = outcome.version
    attrs[sc.POLICY_MODE] = outcome.mode
    if outcome.rule is not None:
        attrs[sc.POLICY_RULE] = outcome.rule
    if not outcome.rollout:
        attrs[sc.POLICY_ROLLOUT] = False
    if outcome.exploration:
        attrs[sc.POLICY_EXPLORATION] = True
    if outcome.applied_model is not None:
        attrs[sc.POLICY_REQUESTED_MODEL] = outcome.requested_model
        attrs[sc.POLICY_APPLIED_MODEL] = outcome.applied_model
    if outcome.requested_max_tokens is not None:
        attrs[sc.POLICY_REQUESTED_MAX_TOKENS] = outcome.requested_max_tokens
    if outcome.applied_max_tokens is not None:
        attrs[sc.POLICY_APPLIED_MAX_TOKENS] = outcome.applied_max_tokens
    if outcome.breakpoints_added:
        attrs[sc.POLICY_CACHE_BREAKPOINTS_ADDED] = outcome.breakpoints_added
    if outcome.safety_retry:
        attrs[sc.POLICY_SAFETY_RETRY] = True


def content_attributes(body: dict[str, Any], encode: Callable[[Any], str]) -> dict[str, str]:
    """Opt-in content of a request as sent: messages, system prompt and tool definitions, each clipped."""
    found = {}
    for key, name in (("messages", sc.GEN_AI_INPUT_MESSAGES), ("system", sc.GEN_AI_SYSTEM_INSTRUCTIONS),
                      ("tools", sc.GEN_AI_TOOL_DEFINITIONS)):
        value = body.get(key)
        if value is not None:
            found[name] = encode(value)
    return found


def end_attributes(call: Call, cost: float | None, ttft: float | None, per_token: float | None) -> dict[str, Any]:
    """What the call learnt by its end: the response, usage, cost, headers, timing and failure."""
    attrs: dict[str, Any] = {}
    if call.response_id is not None:
        attrs[sc.GEN_AI_RESPONSE_ID] = call.response_id
    if call.response_model is not None:
        attrs[sc.GEN_AI_RESPONSE_MODEL] = call.response_model
    if call.finish_reason is not None:
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = (call.finish_reason,)
    if call.output_content is not None:
        attrs[sc.GEN_AI_OUTPUT_MESSAGES] = call.output_content
    if call.counted_tokens is not None:
        attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] = call.counted_tokens
    if call.batch_id is not None:
        attrs[sc.BATCH_ID] = call.batch_id
    if call.batch_status is not None:
        attrs[sc.BATCH_STATUS] = call.batch_status
    if call.headers is not None:
        header_attributes(call.headers, attrs)
    if call.retries is not None:
        attrs[sc.RETRIES] = call.retries
    if call.streaming and call.operation == sc.CHAT_OPERATION:
        attrs[sc.STREAM_COMPLETE] = call.complete
    if call.usage is not None:
        usage_attributes(call.usage, call.tel.naming.cache_write_attributes(), attrs)
    if cost is not None:
        attrs[sc.COST_USD] = cost
    if ttft is not None:
        attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = ttft
    if per_token is not None:
        attrs[sc.TIME_PER_OUTPUT_TOKEN] = per_token
    if call.error_type is not None:
        attrs[sc.ERROR_TYPE] = call.error_type
    if call.cancelled:
        attrs[sc.CANCELLED] = True
    if call.policy_truncated:
        attrs[sc.POLICY_TRUNCATED] = True
    if call.admission_limit is not None:
        attrs[sc.ADMISSION_LIMIT] = call.admission_limit
        if call.admission_wait:  # most calls go at once: a missing wait reads as 0
            attrs[sc.ADMISSION_WAIT] = call.admission_wait
        if call.admission_timed_out:
            attrs[sc.ADMISSION_TIMED_OUT] = True
    return attrs


def usage_attributes(usage: UsageReading, cache_write_names: tuple[str, ...], into: dict[str, Any]) -> None:
    # Cache counters are set only when non-zero: most calls touch no cache, every span attribute costs each
    # call, and readers (the tuner, the dashboards) take a missing counter as 0.
    cache_read = usage.cache_read or 0
    cache_write = usage.cache_write or 0
    if usage.input is not None:
        into[sc.GEN_AI_USAGE_INPUT_TOKENS] = usage.input + cache_read + cache_write
        if cache_read or cache_write:
            into[sc.ANTHROPIC_UNCACHED_INPUT_TOKENS] = usage.input
    if usage.output is not None:
        into[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output
    if cache_read:
        into[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cache_read
    if cache_write:
        for name in cache_write_names:
            into[name] = cache_write
        five, hour = usage.write_split()
        into[sc.ANTHROPIC_CACHE_WRITE_5M_TOKENS] = five
        into[sc.ANTHROPIC_CACHE_WRITE_1H_TOKENS] = hour
    if usage.reasoning is not None:
        into[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning
    if usage.tier is not None:
        into[sc.ANTHROPIC_SERVICE_TIER] = usage.tier
    if usage.unreadable:
        into[sc.USAGE_UNREADABLE] = usage.unreadable


# Response headers worth a span attribute, by lowercase raw name; all but request-id are integers.
_HEADERS = {
    b"request-id": sc.ANTHROPIC_REQUEST_ID,
    b"anthropic-ratelimit-requests-remaining": sc.ANTHROPIC_RATELIMIT_REQUESTS_REMAINING,
    b"anthropic-ratelimit-tokens-remaining": sc.ANTHROPIC_RATELIMIT_TOKENS_REMAINING,
    b"anthropic-ratelimit-input-tokens-remaining": sc.ANTHROPIC_RATELIMIT_INPUT_TOKENS_REMAINING,
    b"anthropic-ratelimit-output-tokens-remaining": sc.ANTHROPIC_RATELIMIT_OUTPUT_TOKENS_REMAINING,
    b"anthropic-ratelimit-requests-limit": sc.ANTHROPIC_RATELIMIT_REQUESTS_LIMIT,
    b"anthropic-ratelimit-input-tokens-limit": sc.ANTHROPIC_RATELIMIT_INPUT_TOKENS_LIMIT,
    b"anthropic-ratelimit-output-tokens-limit": sc.ANTHROPIC_RATELIMIT_OUTPUT_TOKENS_LIMIT,
}


def header_attributes(headers: Any, into: dict[str, Any]) -> None:
    """Request id and rate limits (limit, remaining) from response headers (httpx or httpx2 Headers).

    One pass over the raw header list: a `.get()` per name would rescan and re-lowercase every header each time.
    """
    raw = getattr(headers, "raw", None)
    if raw is None:
        return
    for key, value in raw:
        name = _HEADERS.get(key.lower())
        if name is None:
            continue
        text = value.decode("latin-1")
        if name == sc.ANTHROPIC_REQUEST_ID:
            into[name] = text
        else:
            # str.isdigit() accepts '²' and other digits int() rejects; only plain ASCII counts are read.
            number = to_int64(int(text)) if text.isascii() and text.isdigit() else None
            if number is not None:
                into[name] = number
