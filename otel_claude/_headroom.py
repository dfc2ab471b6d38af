"""The API's rate-limit headers as gauges: the latest (limit, remaining) per model and kind.

Read from the response headers every call already parses for its span; a dashboard divides remaining by limit for
the headroom left in the current minute.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

from . import semconv as sc
from ._limiter import KINDS

__all__ = ["Headroom"]

_NAMES = tuple(zip(KINDS, sc.RATELIMIT_READINGS, strict=True))


class Headroom:
    def __init__(self) -> None:
        self._after_fork_in_child()

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[tuple[str, str], tuple[int, int]] = {}

    def note(self, model: str | None, attributes: Mapping[str, Any]) -> None:
        """The readings among a finished call's span attributes, if it has any."""
        if model is None:
            return
        readings = [((model, kind), (limit, remaining)) for kind, (limit_name, remaining_name) in _NAMES
                    if (limit := attributes.get(limit_name)) is not None
                    and (remaining := attributes.get(remaining_name)) is not None]
        if readings:
            with self._lock:
                self._latest.update(readings)

    def _observe(self, index: int) -> Iterable[Observation]:
        with self._lock:
            items = list(self._latest.items())
        return [Observation(values[index], {sc.GEN_AI_REQUEST_MODEL: model, sc.LIMIT_KIND_LABEL: kind})
                for (model, kind), values in items]

    def observe_limits(self, _options: CallbackOptions) -> Iterable[Observation]:
        return self._observe(0)

    def observe_remaining(self, _options: CallbackOptions) -> Iterable[Observation]:
        return self._observe(1)
