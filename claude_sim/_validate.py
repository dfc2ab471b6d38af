"""Request validation with the real API's messages: what it rejects before any model runs."""

from __future__ import annotations

from typing import Any

from claude_sim._errors import ApiError, invalid

API_VERSIONS = ("2023-06-01", "2026-10-21")
# anthropic 2.x sends the new version, under which sampling parameters are gone (shared/reference/anthropic-api.md).
_REJECTED = {"2026-10-21": ("temperature", "top_p", "top_k")}
_ROLES = ("user", "assistant")


def check_headers(headers: dict[str, str]) -> str:
    """Authentication and version; returns the API version in force."""
    key = headers.get("x-api-key")
    auth = headers.get("authorization", "")
    if not key and not auth.lower().startswith("bearer "):
        raise ApiError(401, "x-api-key header is required")
    if not (key or auth[7:].strip()):
        raise ApiError(401, "invalid x-api-key")
    version = headers.get("anthropic-version")
    if version is None:
        raise invalid("anthropic-version: header is required")
    if version not in API_VERSIONS:
        raise invalid(f"anthropic-version: unknown version '{version}'")
    return version


def _require(body: dict[str, Any], field: str) -> Any:
    if field not in body:
        raise invalid(f"{field}: Field required")
    return body[field]


def check_message_body(body: Any, version: str) -> None:
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object")
    model = _require(body, "model")
    if not isinstance(model, str) or not model:
        raise invalid("model: Input should be a valid string")
    max_tokens = _require(body, "max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise invalid("max_tokens: Input should be greater than or equal to 1")
    check_messages(body)
    for name in _REJECTED.get(version, ()):
        if name in body:
            raise invalid(f"{name}: Extra inputs are not permitted (removed in anthropic-version {version})")
    temperature = body.get("temperature")
    if temperature is not None and (not isinstance(temperature, int | float) or not 0 <= temperature <= 1):
        raise invalid("temperature: Input should be less than or equal to 1")
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            raise invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if budget >= max_tokens:
            raise invalid("`max_tokens` must be greater than `thinking.budget_tokens`")


def check_messages(body: dict[str, Any]) -> None:
    messages = _require(body, "messages")
    if not isinstance(messages, list):
        raise invalid("messages: Input should be a valid list")
    if not messages:
        raise invalid("messages: at least one message is required")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise invalid(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        if "content" not in message:
            raise invalid(f"messages.{index}.content: Field required")
    if messages[0].get("role") != "user":
        raise invalid("messages: first message must use the \"user\" role")
