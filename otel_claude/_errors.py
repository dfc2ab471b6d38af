"""The exception a call gets when a policy limit fails it fast (public as `otel_claude.AdmissionTimeoutError`)."""

from __future__ import annotations

import importlib

import anthropic

__all__ = ["AdmissionTimeoutError", "admission_timeout"]


class AdmissionTimeoutError(anthropic.RateLimitError):
    """The call waited the policy limit's `max_wait` for admission and the limit says `on_timeout: fail`.

    A `RateLimitError` (status 429, error type `rate_limit_error`) because that is what callers already handle for
    "too many calls right now"; raised before anything is sent, so the SDK does not retry it and no quota is used.
    """


def admission_timeout(limit_id: str, max_wait: float, url: str) -> AdmissionTimeoutError:
    # The SDK's own httpx flavour (httpx2 from anthropic 1.0), so `.response` is the type callers expect.
    base = importlib.import_module("anthropic._base_client")
    httpx = getattr(base, "httpx2", None) or base.httpx
    message = (f"otel_claude: not admitted within {max_wait:g} s under the policy limit {limit_id!r} "
               "(on_timeout: fail); the request was not sent")
    response = httpx.Response(429, request=httpx.Request("POST", url), headers={"x-should-retry": "false"})
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": message}}
    return AdmissionTimeoutError(message, response=response, body=body)
