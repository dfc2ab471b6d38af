"""Options of `instrument()`, resolved once against the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ._clip import clipped_json
from .catalog import Catalog, load_catalog

__all__ = ["Config", "resolve_config"]

CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_CONTENT_ON = {"span_only", "span_and_event", "true", "1", "yes", "on"}
_DEFAULT_MAX_CONTENT_CHARS = 16_384


@dataclass
class Config:
    capture_content: bool = False
    max_content_chars: int = _DEFAULT_MAX_CONTENT_CHARS
    keep_native_spans: bool = False
    catalog: Catalog | None = None  # None: the process-wide catalog (built-in prices + OTEL_CLAUDE_PRICES)

    def encode(self, value: Any) -> str:
        """Opt-in content as a JSON attribute value, at most `max_content_chars` characters (plus a marker)."""
        return clipped_json(value, self.max_content_chars)


def resolve_config(
    capture_content: bool | None = None,
    max_content_chars: int | None = None,
    keep_native_spans: bool = False,
    prices: str | os.PathLike[str] | None = None,
    **unknown: Any,
) -> Config:
    if unknown:
        raise TypeError(f"otel_claude.instrument() got unknown options: {', '.join(sorted(unknown))}")
    if capture_content is None:
        capture_content = os.environ.get(CONTENT_ENV, "").strip().lower() in _CONTENT_ON
    return Config(
        capture_content=bool(capture_content),
        max_content_chars=max_content_chars or _DEFAULT_MAX_CONTENT_CHARS,
        keep_native_spans=keep_native_spans,
        catalog=load_catalog(prices) if prices else None,
    )
