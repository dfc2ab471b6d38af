"""otel-claude: OpenTelemetry for the Anthropic SDK that learns from its traces and tunes the calls.

    import otel_claude
    otel_claude.instrument()

Public API: `instrument`, `uninstrument`, `task`, `feedback`, `register_grader`, `unregister_grader`, `Answer`,
`ToolCall`, `Verdict`, `wait_for_evaluations(_async)`, `AnthropicInstrumentor`, `OTLPJsonFileSpanExporter`,
`AdmissionTimeoutError`. Everything in underscore modules is private.
"""

from __future__ import annotations

from typing import Any

from ._errors import AdmissionTimeoutError
from ._instrumentor import AnthropicInstrumentor
from ._task import task
from ._version import __version__
from .grading import Answer, ToolCall, Verdict, register_grader, unregister_grader
from .otlp_file import OTLPJsonFileSpanExporter

__all__ = [
    "AdmissionTimeoutError",
    "Answer",
    "AnthropicInstrumentor",
    "OTLPJsonFileSpanExporter",
    "ToolCall",
    "Verdict",
    "__version__",
    "feedback",
    "instrument",
    "register_grader",
    "task",
    "uninstrument",
    "unregister_grader",
    "wait_for_evaluations",
    "wait_for_evaluations_async",
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


def wait_for_evaluations(timeout: float | None = None) -> bool:
    """Block until the paired evaluations started so far have finished (their spans ended); False on timeout.

    For scripts and batch jobs that exit right after their calls. From async code, await
    `wait_for_evaluations_async()` instead: the jobs of an async client run on its event loop.
    """
    return AnthropicInstrumentor.wait_for_evaluations(timeout)


async def wait_for_evaluations_async() -> None:
    """Await the paired evaluations started so far (this loop's jobs, then the worker threads')."""
    await AnthropicInstrumentor.wait_for_evaluations_async()
