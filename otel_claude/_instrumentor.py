"""`AnthropicInstrumentor`: the BaseInstrumentor that `opentelemetry-instrument` discovers by entry point."""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from ._config import resolve_config
from ._evaluation import Evaluator, evaluation_options
from ._feedback import feedback_span
from ._forks import on_fork_in_child
from ._hooks import Hooks
from ._policy_engine import PolicyEngine
from ._setup import ensure_providers
from ._telemetry import Telemetry

__all__ = ["AnthropicInstrumentor"]

_lock = threading.Lock()


def _new_lock() -> None:
    global _lock
    _lock = threading.Lock()


on_fork_in_child(_new_lock)


class AnthropicInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Traces every Anthropic SDK call and, given a policy, tunes it.

    Options of `instrument()`: `tracer_provider`, `meter_provider`, `capture_content` (default from
    OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT), `max_content_chars`, `keep_native_spans` (keep the SDK's
    own span as well), `prices` (a CSV overriding the price table), `policy` (path, URL or mapping; default from
    OTEL_CLAUDE_POLICY), `policy_options` (mapping for the enforcement engine), `evaluation_options` (paired
    evaluation: `enabled`, a default `judge` {model, rubric}, `workers`, `max_pending`; see `EvaluationOptions`),
    `setup_providers` (default True: when the application has not configured OpenTelemetry, set up OTLP export from
    the OTEL_* variables).
    """

    _hooks: Hooks | None = None
    _telemetry: Telemetry | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("anthropic >= 0.125",)

    def _instrument(self, **kwargs: Any) -> None:
        tracer_provider = kwargs.pop("tracer_provider", None)
        meter_provider = kwargs.pop("meter_provider", None)
        setup_providers = kwargs.pop("setup_providers", True)
        policy_source = kwargs.pop("policy", None)
        policy_options = kwargs.pop("policy_options", None) or {}
        evaluation = evaluation_options(kwargs.pop("evaluation_options", None))
        config = resolve_config(**kwargs)
        if setup_providers and (tracer_provider is None or meter_provider is None):
            ensure_providers()
        telemetry = Telemetry.for_providers(tracer_provider, meter_provider)
        policy = PolicyEngine.from_source(policy_source, **policy_options)
        if policy is not None:
            telemetry.policies.watch(policy.source)
        evaluator = Evaluator(telemetry, evaluation, policy) if evaluation.enabled and policy is not None else None
        hooks = Hooks(telemetry, config, policy, evaluator)
        with _lock:
            hooks.install()
            type(self)._hooks = hooks
            type(self)._telemetry = telemetry

    def _uninstrument(self, **kwargs: Any) -> None:
        with _lock:
            hooks = type(self)._hooks
            if hooks is not None:
                hooks.uninstall()
                if hooks.evaluator is not None:
                    hooks.evaluator.close()
                hooks.tel.flush()
                if hooks.policy is not None:
                    hooks.tel.policies.forget(hooks.policy.source)
                    hooks.policy.close()
            type(self)._hooks = None
            type(self)._telemetry = None

    @classmethod
    def wait_for_evaluations(cls, timeout: float | None) -> bool:
        hooks = cls._hooks
        return hooks is None or hooks.evaluator is None or hooks.evaluator.background.wait_idle(timeout)

    @classmethod
    async def wait_for_evaluations_async(cls) -> None:
        hooks = cls._hooks
        if hooks is not None and hooks.evaluator is not None:
            await hooks.evaluator.background.wait_idle_async()

    @classmethod
    def record_feedback(cls, response_or_id: Any, score: float, label: str | None) -> None:
        telemetry = cls._telemetry
        if telemetry is None:
            # Not instrumented: still emit through the global provider so scores are not silently lost.
            telemetry = Telemetry.for_providers()
        feedback_span(telemetry.tracer, telemetry.calls_by_response_id, response_or_id, score, label,
                      telemetry.quality)
