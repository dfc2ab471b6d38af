"""API errors with the real API's status codes, error types and body shape."""

from __future__ import annotations

from typing import Any

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, retry_after: float | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = _TYPES.get(status, "api_error")
        self.message = message
        self.retry_after = retry_after
        self.headers = headers or {}

    def body(self, request_id: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.type, "message": self.message}, "request_id": request_id}

    def event(self) -> dict[str, Any]:
        """The mid-stream form: an SSE `error` event carries no request_id."""
        return {"type": "error", "error": {"type": self.type, "message": self.message}}

    @property
    def should_retry(self) -> bool:
        return self.status in (408, 409, 429) or self.status >= 500


def invalid(message: str) -> ApiError:
    return ApiError(400, message)
