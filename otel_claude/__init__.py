"""otel-claude: OpenTelemetry for the Anthropic SDK that learns from its traces and tunes the calls.

    import otel_claude
    otel_claude.instrument()

Public API: `instrument`, `uninstrument`, `task`, `feedback`, `AnthropicInstrumentor`,
`OTLPJsonFileSpanExporter`, `AdmissionTimeoutError`. Everything in underscore modules is private.
"""

from __future__ import annotations

from typing import Any

from ._errors import AdmissionTimeoutError
from ._instrumentor import AnthropicInstrumentor
from ._task import task
from ._version import __version__
from .otlp_file import OTLPJsonFileSpanExporter

__all__ = [
    "AdmissionTimeoutError",
    "AnthropicInstrumentor",
    "OTLPJsonFileSpanExporter",
    "__version__",
    "feedback",
    "instrument",
    "task",
    "uninstrument",
]


def instrument(**options: Any) -> None:
    """Instrument the Anthropic SDK (all clients, existing and future). A second call is a no-op.

    See `AnthropicInstrumentor` for the options.
    """
    AnthropicInstrumentor().instrument(**options)


def uninstrument() -> None:
    """Restore the SDK exactly as it was."""
    AnthropicInstrumentor().uninstrument()


def feedback(response_or_id: Any, score: float, label: str | None = None) -> None:
    """Attach a quality score (e.g. 1.0 correct, 0.0 wrong) to a finished call: a Message or its id."""
    AnthropicInstrumentor.record_feedback(response_or_id, score, label)
