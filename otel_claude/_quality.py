"""Quality signals summed in-process for metrics: feedback scores and paired verdicts, per task and model.

Spans carry each score and verdict (the tuner reads those); these counters let a dashboard plot quality per task
and model over time without a trace backend. Both are reported by observable counters at collection: nothing is
recorded through the metrics SDK on the caller's path.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Observation

from . import semconv as sc

__all__ = ["QualityTotals"]

_Key = tuple[str | None, str | None]  # (model, task)


class QualityTotals:
    def __init__(self) -> None:
        self._after_fork_in_child()

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._scores: dict[_Key, tuple[int, float]] = {}
        self._verdicts: dict[tuple[str | None, str | None, str, str], int] = {}

    def add_score(self, model: str | None, task: str | None, score: float) -> None:
        key = (model, task)
        with self._lock:
            count, total = self._scores.get(key, (0, 0.0))
            self._scores[key] = (count + 1, total + score)

    def add_verdict(self, incumbent: str | None, task: str | None, candidate: str, label: str) -> None:
        key = (incumbent, task, candidate, label)
        with self._lock:
            self._verdicts[key] = self._verdicts.get(key, 0) + 1

    @staticmethod
    def _labels(model: str | None, task: str | None) -> dict[str, str]:
        labels = {}
        if model is not None:
            labels[sc.GEN_AI_REQUEST_MODEL] = model
        if task is not None:
            labels[sc.TASK] = task
        return labels

    def observe_score_counts(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._scores.items())
        return [Observation(count, self._labels(*key)) for key, (count, _) in items]

    def observe_score_sums(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._scores.items())
        return [Observation(total, self._labels(*key)) for key, (_, total) in items]

    def observe_verdicts(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._verdicts.items())
        return [Observation(count, {**self._labels(incumbent, task), sc.EVALUATION_CANDIDATE_MODEL: candidate,
                                    sc.GEN_AI_EVALUATION_SCORE_LABEL: label})
                for (incumbent, task, candidate, label), count in items]
