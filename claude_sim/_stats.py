"""Per-call records of a workload run and their summary (overall and per task)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class CallRecord:
    task: str
    model: str  # the model that answered (after any policy routing), or the requested one on error
    stream: bool
    duration_s: float
    ttft_s: float | None = None  # streams only: call start to the first content delta
    error: str | None = None
    input_tokens: int = 0  # input + cache read + cache write
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    stop_reason: str | None = None
    correct: bool | None = None  # None when the answer was not graded (error, no scenario answer, agent step)
    turn: int = 1
    at: float = 0.0  # scenario time the call was planned for


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no data."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class TaskStats:
    calls: int
    errors: int
    cost_usd: float
    cost_per_call: float
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    duration_p50_s: float | None
    duration_p95_s: float | None
    truncation_rate: float
    cache_hit_rate: float  # cache_read / (cache_read + cache_write) tokens, the realised reuse
    quality: float | None  # share of graded answers that were correct
    models: dict[str, int] = field(default_factory=dict)
    evaluation_cost_usd: float = 0.0  # the instrumentor's own paired-evaluation calls for these (not in cost_usd)

    @classmethod
    def of(cls, records: list[CallRecord], charged: float | None = None, evaluation: float = 0.0) -> TaskStats:
        """`charged`: what the API charged for these calls in all, when known (a policy's safety net re-sends a
        truncated call; the first attempt is paid for but its reply never reaches the caller)."""
        done = [r for r in records if r.error is None]
        graded = [r.correct for r in done if r.correct is not None]
        read = sum(r.cache_read_tokens for r in done)
        written = sum(r.cache_write_tokens for r in done)
        cost = sum(r.cost_usd for r in records) if charged is None else charged
        return cls(
            calls=len(records),
            errors=len(records) - len(done),
            cost_usd=cost,
            cost_per_call=cost / len(records) if records else 0.0,
            ttft_p50_s=percentile([r.ttft_s for r in done if r.ttft_s is not None], 50),
            ttft_p95_s=percentile([r.ttft_s for r in done if r.ttft_s is not None], 95),
            duration_p50_s=percentile([r.duration_s for r in done], 50),
            duration_p95_s=percentile([r.duration_s for r in done], 95),
            truncation_rate=sum(r.stop_reason == "max_tokens" for r in done) / len(done) if done else 0.0,
            cache_hit_rate=read / (read + written) if read + written else 0.0,
            quality=sum(graded) / len(graded) if graded else None,
            models=dict(Counter(r.model for r in records)),
            evaluation_cost_usd=evaluation,
        )


@dataclass(frozen=True)
class Summary:
    overall: TaskStats
    per_task: dict[str, TaskStats]
    wall_s: float
    records: list[CallRecord] = field(repr=False, default_factory=list)

    @classmethod
    def of(cls, records: list[CallRecord], wall_s: float, charged: dict[str, float] | None = None,
           evaluation: dict[str, float] | None = None) -> Summary:
        """`charged`, `evaluation`: the cost per task of the task's own calls and of the instrumentor's evaluation
        calls, when the run's spans were tallied (see TaskStats.of)."""
        tasks = sorted({r.task for r in records})
        spent = evaluation or {}

        def stats(subset: list[CallRecord], names: list[str]) -> TaskStats:
            cost = sum(charged.get(name, 0.0) for name in names) if charged is not None else None
            return TaskStats.of(subset, cost, sum(spent.get(name, 0.0) for name in names))

        return cls(overall=stats(records, tasks), wall_s=wall_s, records=records,
                   per_task={name: stats([r for r in records if r.task == name], [name]) for name in tasks})

    def to_dict(self) -> dict[str, Any]:
        return {"overall": asdict(self.overall), "per_task": {k: asdict(v) for k, v in self.per_task.items()},
                "wall_s": self.wall_s}

    def format(self) -> str:
        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value * 1000:.0f}"

        header = (f"{'task':<12}{'calls':>7}{'errors':>7}{'$/call':>11}{'ttft p50':>10}{'p95':>7}"
                  f"{'dur p50':>9}{'p95':>7}{'trunc':>7}{'cache':>7}{'quality':>9}  models")
        lines = [header, "-" * len(header)]
        rows = [*self.per_task.items(), ("ALL", self.overall)]
        for name, stats in rows:
            quality = "-" if stats.quality is None else f"{stats.quality:.3f}"
            models = ", ".join(f"{model}:{count}" for model, count in sorted(stats.models.items()))
            lines.append(f"{name:<12}{stats.calls:>7}{stats.errors:>7}{stats.cost_per_call:>11.5f}"
                         f"{ms(stats.ttft_p50_s):>10}{ms(stats.ttft_p95_s):>7}{ms(stats.duration_p50_s):>9}"
                         f"{ms(stats.duration_p95_s):>7}{stats.truncation_rate:>7.3f}{stats.cache_hit_rate:>7.3f}"
                         f"{quality:>9}  {models}")
        lines.append(f"total cost ${self.overall.cost_usd:.4f} in {self.wall_s:.1f}s wall "
                     f"({self.overall.calls / self.wall_s if self.wall_s else 0:.0f} calls/s); times in ms")
        return "\n".join(lines)
