"""Helpers shared by the simulator tests (a module of its own: `from conftest import` depends on which
conftest pytest imported last)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest


class FakeClock:
    """An injectable clock: tests move time explicitly instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def raw_post(base_url: str, path: str, body: Any, headers: dict[str, str] | None = None,
             data: bytes | None = None) -> tuple[int, dict[str, str], Any]:
    """A request without the SDK, to send what the SDK would refuse to send."""
    request_headers = {"content-type": "application/json", "x-api-key": "test", "anthropic-version": "2023-06-01"}
    request_headers.update(headers or {})
    request_headers = {k: v for k, v in request_headers.items() if v is not None}
    payload = data if data is not None else json.dumps(body).encode()
    request = urllib.request.Request(base_url + path, data=payload, headers=request_headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, json.loads(err.read())


def requires(obj: Any, path: str) -> None:
    """Skip when this SDK version lacks a resource (old 0.x releases had count_tokens, models, batches in beta)."""
    for name in path.split("."):
        if not hasattr(obj, name):
            pytest.skip(f"this anthropic version has no {path}")
        obj = getattr(obj, name)


def cache_split(usage: Any) -> tuple[int, int]:
    """(5m, 1h) cache writes; SDKs before the `cache_creation` field keep it as an untyped dict."""
    split = getattr(usage, "cache_creation", None)
    if isinstance(split, dict):
        return split.get("ephemeral_5m_input_tokens", 0), split.get("ephemeral_1h_input_tokens", 0)
    return split.ephemeral_5m_input_tokens, split.ephemeral_1h_input_tokens


def user(text: str = "Hello") -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]
