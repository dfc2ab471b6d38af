"""What the decisions read: per (task, model) and per (task, prefix) statistics, whatever the input format.

File readers build it from the in-memory call table; the ClickHouse reader builds the same objects from SQL
aggregates and bounded samples, so each decision has one implementation for every input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from tuner._records import (
    APPLICATION,
    CANCELLED,
    ERROR,
    FLAG_EXPLORATION,
    JUDGE,
    REFUSAL,
    TRUNCATED,
    Columns,
    Verdict,
)

# A read refreshes a 5-minute cache entry; the 1-hour TTL is fixed (Anthropic prompt caching docs).
TTL_SECONDS = {"5m": 300, "1h": 3600}
# Costs are summed as whole nano-dollars. A float sum depends on the order of its terms, which SQL engines do not
# fix; prices make per-call costs round decimals, so the mean often lands exactly on the rounding boundary of the
# policy's evidence and a last-bit difference changed the policy text between runs of the same tune.
COST_UNITS_PER_USD = 10**9
# Bound on the length samples kept per (task, model): conformal bounds need ~1/a points, models fit well on 50k.
SAMPLE_LIMIT = 50_000


@dataclass(frozen=True)
class Quality:
    """Feedback scores joined to one (task, model): count, mean and standard deviation."""

    n: int
    mean: float
    sd: float

    @property
    def se(self) -> float:
        return self.sd / math.sqrt(self.n) if self.n > 0 else float("inf")


@dataclass
class ModelStats:
    """One task on one model. Length samples: output tokens, censored where the call hit its cap."""

    task: str
    model: str
    calls: int  # the application's calls (the task's traffic); shadow calls are counted apart
    explore_calls: int
    errors: int
    truncated: int
    refusals: int
    cancelled: int  # calls the caller abandoned: no outcome of the model, not in any rate
    cost_total: float
    mean_input: float
    mean_output: float
    mean_cache_read: float
    mean_cache_write: float
    ttft_p95: float | None
    duration_p95: float | None
    max_tokens: int | None  # the most common value sent (after any policy)
    requested_max_tokens: int | None  # the most common value the callers asked for
    requested_model: str  # the model the callers asked for (the most common), before any policy routing
    quality: Quality | None
    lengths: np.ndarray = field(repr=False)
    sizes: np.ndarray = field(repr=False)
    censored: np.ndarray = field(repr=False)
    caps: np.ndarray = field(repr=False)  # max_tokens each sampled call was sent with
    scores: np.ndarray = field(repr=False)  # feedback score of each sampled call, NaN when unscored
    times: np.ndarray = field(repr=False)  # start time (ns) of each sampled call, in time order
    # Shadow copies of the task's calls this model answered for paired evaluation: its lengths, latency and output
    # on the task are in the samples and means above, but not in `calls`, the rates or the cost of the traffic.
    shadow_calls: int = 0

    @property
    def cost_per_call(self) -> float:
        return self.cost_total / self.calls if self.calls else 0.0

    @property
    def truncation_rate(self) -> float:
        completed = self.calls - self.errors - self.cancelled
        return self.truncated / completed if completed > 0 else 0.0


@dataclass(frozen=True)
class PrefixStats:
    """Calls of one task sharing one prefix fingerprint, with their inter-arrival gaps."""

    task: str
    fingerprint: str
    model: str
    calls: int
    prefix_tokens: int
    gaps: int
    gaps_within: dict[str, int]
    cache_read_tokens: int
    cache_write_tokens: int


@dataclass(frozen=True, kw_only=True)
class VerdictStream:
    """Paired verdicts of one task and model pair, in time order: d = quality(candidate) - quality(incumbent)."""

    task: str
    incumbent: str
    candidate: str
    times: np.ndarray = field(repr=False)
    values: np.ndarray = field(repr=False)  # d in [-1, 1]
    settled: np.ndarray = field(repr=False)  # False: the answers differ and no grader could say which is better


@dataclass
class Dataset:
    models: list[ModelStats]
    prefixes: list[PrefixStats]
    spans: int
    calls: int
    feedback: int
    feedback_unmatched: int
    start_ns: int | None
    end_ns: int | None
    verdicts: list[VerdictStream] = field(default_factory=list)
    evaluation_cost: dict[str, float] = field(default_factory=dict)  # per task: shadow and judge calls' spend

    @property
    def days(self) -> float | None:
        """The data window's length in days (None for an empty or single-instant window)."""
        if self.start_ns is None or self.end_ns is None or self.end_ns <= self.start_ns:
            return None
        return (self.end_ns - self.start_ns) / 86_400e9

    def tasks(self) -> list[str]:
        return sorted({m.task for m in self.models})

    def for_task(self, task: str) -> list[ModelStats]:
        return [m for m in self.models if m.task == task]

    def verdicts_for(self, task: str) -> list[VerdictStream]:
        return [v for v in self.verdicts if v.task == task]


def size_edges(sizes: np.ndarray, buckets: int = 3) -> np.ndarray:
    """Input-size bucket boundaries at quantiles, dropping any that would leave a bucket empty."""
    candidates = (
        np.unique(np.quantile(sizes, np.linspace(0, 1, buckets + 1)[1:-1]).astype(np.int64)) if len(sizes) else []
    )
    kept: list[int] = []
    for edge in list(candidates):
        low = kept[-1] if kept else -1
        if np.any((sizes >= low) & (sizes < edge)) and np.any(sizes >= edge):
            kept.append(int(edge))
    return np.array(kept, dtype=np.int64)


def in_range(sizes: np.ndarray, low: int, high: int | None) -> np.ndarray:
    return (sizes >= low) & (sizes < high) if high is not None else sizes >= low


def restrict(stats: ModelStats, inside: np.ndarray) -> ModelStats:
    """The same model on the sampled calls selected by `inside`; quality recomputed from their scores."""
    return replace(
        stats,
        quality=_quality(stats.scores[inside]),
        lengths=stats.lengths[inside],
        sizes=stats.sizes[inside],
        censored=stats.censored[inside],
        caps=stats.caps[inside],
        scores=stats.scores[inside],
        times=stats.times[inside],
    )


def summed_cost(costs: np.ndarray) -> float:
    """The total of per-call costs (NaN: unknown, counted as 0), independent of the order of the calls."""
    units = np.round(np.nan_to_num(costs, nan=0.0) * COST_UNITS_PER_USD).astype(np.int64)
    return int(units.sum()) / COST_UNITS_PER_USD


def _p95(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(np.quantile(values, 0.95)) if len(values) else None


def _mode(values: np.ndarray) -> int | None:
    """The most common positive value (the smallest on ties); None when there is none."""
    values = values[values > 0]
    if not len(values):
        return None
    distinct, counts = np.unique(values, return_counts=True)
    return int(distinct[np.argmax(counts)])


def _most_common_name(ids: np.ndarray, names: list[str]) -> str:
    """The most common of interned names (the alphabetically first on ties); `ids` is never empty."""
    distinct, counts = np.unique(ids, return_counts=True)
    best = min(range(len(distinct)), key=lambda i: (-counts[i], names[int(distinct[i])]))
    return names[int(distinct[best])]


def _quality(scores: np.ndarray) -> Quality | None:
    scores = scores[~np.isnan(scores)]
    if not len(scores):
        return None
    sd = float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0
    return Quality(n=len(scores), mean=float(np.mean(scores)), sd=sd)


def _groups(*keys: np.ndarray) -> list[np.ndarray]:
    """Row indices per distinct key combination, in key order (deterministic for the same input)."""
    if not len(keys[0]):
        return []
    order = np.lexsort(keys[::-1])
    sorted_keys = np.stack([k[order] for k in keys])
    change = np.any(sorted_keys[:, 1:] != sorted_keys[:, :-1], axis=0)
    bounds = np.flatnonzero(change) + 1
    return np.split(order, bounds)


def _sample(rows: np.ndarray, limit: int) -> np.ndarray:
    if len(rows) <= limit:
        return rows
    # Evenly spaced over time order: deterministic and spread across the data window.
    return rows[np.linspace(0, len(rows) - 1, limit).astype(np.int64)]


def _model_stats(c: Columns, rows: np.ndarray) -> ModelStats:
    """One (task, model) from its application and shadow calls (judge calls are not the task's requests)."""
    app = rows[c.role[rows] == APPLICATION]
    own = app if len(app) else rows  # a model seen only in shadow calls describes itself from those
    outcome = c.outcome[app]
    everything = c.outcome[rows]
    completed = rows[(everything != ERROR) & (everything != CANCELLED) & (c.output_tokens[rows] >= 0)]
    sample = _sample(completed[np.argsort(c.start_ns[completed], kind="stable")], SAMPLE_LIMIT)
    return ModelStats(
        task=c.tasks[int(c.task[rows[0]])],
        model=c.models[int(c.model[rows[0]])],
        calls=len(app),
        explore_calls=int(np.count_nonzero(c.flags[app] & FLAG_EXPLORATION)),
        errors=int(np.count_nonzero(outcome == ERROR)),
        truncated=int(np.count_nonzero(outcome == TRUNCATED)),
        refusals=int(np.count_nonzero(outcome == REFUSAL)),
        cancelled=int(np.count_nonzero(outcome == CANCELLED)),
        cost_total=summed_cost(c.cost[app]),
        mean_input=float(np.mean(c.input_tokens[rows] - c.cache_read[rows] - c.cache_write[rows])),
        mean_output=float(np.mean(np.maximum(c.output_tokens[rows], 0))),
        mean_cache_read=float(np.mean(c.cache_read[rows])),
        mean_cache_write=float(np.mean(c.cache_write[rows])),
        ttft_p95=_p95(c.ttft[rows]),
        duration_p95=_p95(c.duration[rows]),
        max_tokens=_mode(c.max_tokens[own]),
        requested_max_tokens=_mode(c.requested_max_tokens[own]),
        requested_model=_most_common_name(c.requested_model[own], c.models),
        quality=_quality(c.score[app]),
        lengths=c.output_tokens[sample].astype(np.int64),
        sizes=c.input_estimate[sample].astype(np.int64),
        censored=c.outcome[sample] == TRUNCATED,
        caps=c.max_tokens[sample].astype(np.int64),
        scores=c.score[sample],
        times=c.start_ns[sample],
        shadow_calls=len(rows) - len(app),
    )


def _prefix_stats(c: Columns, rows: np.ndarray) -> PrefixStats:
    starts = np.sort(c.start_ns[rows])
    gaps = np.diff(starts)
    models = c.model[rows]
    return PrefixStats(
        task=c.tasks[int(c.task[rows[0]])],
        fingerprint=c.prefixes[int(c.prefix[rows[0]])],
        model=c.models[int(np.bincount(models).argmax())],
        calls=len(rows),
        prefix_tokens=int(np.median(c.prefix_tokens[rows])),
        gaps=len(gaps),
        gaps_within={ttl: int(np.count_nonzero(gaps < s * 1e9)) for ttl, s in TTL_SECONDS.items()},
        cache_read_tokens=int(c.cache_read[rows].sum()),
        cache_write_tokens=int(c.cache_write[rows].sum()),
    )


def verdict_streams(verdicts: list[Verdict]) -> list[VerdictStream]:
    """Verdicts grouped by (task, incumbent, candidate), each stream in time order."""
    grouped: dict[tuple[str, str, str], list[Verdict]] = {}
    for v in verdicts:
        grouped.setdefault((v.task, v.incumbent, v.candidate), []).append(v)
    streams = []
    for (task, incumbent, candidate), items in sorted(grouped.items()):
        items.sort(key=lambda v: (v.start_ns, v.value))
        streams.append(VerdictStream(
            task=task, incumbent=incumbent, candidate=candidate,
            times=np.array([v.start_ns for v in items], dtype=np.int64),
            values=np.array([v.value for v in items], dtype=np.float64),
            settled=np.array([v.settled for v in items], dtype=bool),
        ))
    return streams


def build_dataset(c: Columns, spans: int, feedback: int, unmatched: int,
                  verdicts: list[Verdict] | None = None) -> Dataset:
    app = c.role == APPLICATION
    with_prefix = np.flatnonzero((c.prefix >= 0) & app)
    prefix_groups = _groups(c.task[with_prefix], c.prefix[with_prefix])
    task_rows = np.flatnonzero(c.role != JUDGE)
    evaluation = np.flatnonzero(~app)
    spend: dict[str, float] = {}
    for rows in _groups(c.task[evaluation]):
        rows = evaluation[rows]
        spend[c.tasks[int(c.task[rows[0]])]] = summed_cost(c.cost[rows])
    starts = c.start_ns[app]
    return Dataset(
        # Sorted by name, not by interned id, so the order does not depend on which span came first.
        models=sorted((_model_stats(c, task_rows[rows]) for rows in _groups(c.task[task_rows], c.model[task_rows])),
                      key=lambda m: (m.task, m.model)),
        prefixes=sorted(
            (_prefix_stats(c, with_prefix[rows]) for rows in prefix_groups), key=lambda p: (p.task, p.fingerprint)
        ),
        spans=spans,
        calls=int(np.count_nonzero(app)),
        feedback=feedback,
        feedback_unmatched=unmatched,
        start_ns=int(starts.min()) if len(starts) else None,
        end_ns=int(starts.max()) if len(starts) else None,
        verdicts=verdict_streams(verdicts or []),
        evaluation_cost=dict(sorted(spend.items())),
    )
