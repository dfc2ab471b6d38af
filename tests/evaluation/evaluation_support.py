"""Helpers for the paired-evaluation tests: policies with an evaluate block, and reading the spans they produce."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

SONNET, HAIKU = "claude-sonnet-4-6", "claude-haiku-4-5"


def evaluate_policy(share: float = 0.5, task: str = "classify", **evaluate: Any) -> dict[str, Any]:
    rule = {"task": task, "evaluate": {"model": HAIKU, "share": share, "budget": 1.0, **evaluate}}
    return {"schema_version": 1, "version": "eval-1", "rules": [rule]}


def by_role(spans: list[ReadableSpan], role: str | None) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith("chat ") and s.attributes.get("otel_claude.evaluation.role") == role]


def verdicts(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if s.name == "evaluation pairwise"]


def metric_total(telemetry: Any, name: str, **labels: str) -> float:
    total = 0.0
    for point in telemetry.metric_points(name):
        if all(point.attributes.get(k) == v for k, v in labels.items()):
            total += point.value
    return total
