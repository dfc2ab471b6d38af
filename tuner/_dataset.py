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


@dataclass(frozen=True)
class LatencySplit:
    """Median latencies (s) of one task's completed application calls on one model, split the ways the report's
    techniques section compares them: streamed calls (time to first token, full duration) against non-streamed
    ones (full duration), and streamed calls that read the prompt cache against those that did not.

    Counts are the calls each median is taken over; a median over no calls is None.
    """

    streamed: int = 0
    streamed_ttft_p50: float | None = None
    streamed_duration_p50: float | None = None
    plain: int = 0
    plain_duration_p50: float | None = None
    cached: int = 0
    cached_ttft_p50: float | None = None
    uncached: int = 0
    uncached_ttft_p50: float | None = None


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
    latency: LatencySplit = field(default_factory=LatencySplit)

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


@dataclass(frozen=True)
class ConversationStats:
    """The calls of one task that carry conversation keys: how often a call continues an earlier one, after how
    long, and how much of it the earlier call already sent.

    Token counts are the instrumentor's estimates scaled by each call's measured input tokens. The arrays hold a
    bounded sample of the calls, evenly spaced in time.
    """

    task: str
    calls: int
    continuing: int  # calls from the second turn on
    linked: int  # continuing calls whose previous turn is in the data (their gap is known)
    # Observed: tokens of earlier turns' messages that continuing calls resent, and those of the calls whose cache
    # read reached the previous turn's entry.
    history_tokens: int
    history_read: int
    turn: np.ndarray = field(repr=False)
    prefix: np.ndarray = field(repr=False)  # tokens of tools + system
    reusable: np.ndarray = field(repr=False)  # tokens the previous turn sent (prefix included); 0 on a first turn
    total: np.ndarray = field(repr=False)  # input tokens of the request
    gap: np.ndarray = field(repr=False)  # s since the previous turn's prefix was last sent; NaN: first turn/unknown

    @property
    def continuing_share(self) -> float:
        return self.continuing / self.calls if self.calls else 0.0


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
    conversations: list[ConversationStats] = field(default_factory=list)  # none from inputs without the keys

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

    def conversation(self, task: str) -> ConversationStats | None:
        return next((c for c in self.conversations if c.task == task), None)


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
    return _quantile(values, 0.95)


def _quantile(values: np.ndarray, q: float) -> float | None:
    values = values[~np.isnan(values)]
    return float(np.quantile(values, q)) if len(values) else None


def _latency_split(c: Columns, app: np.ndarray) -> LatencySplit:
    done = app[(c.outcome[app] != ERROR) & (c.outcome[app] != CANCELLED)]
    streamed = done[c.stream[done] == 1]
    plain = done[c.stream[done] == 0]
    timed = streamed[~np.isnan(c.ttft[streamed])]
    cached = timed[c.cache_read[timed] > 0]
    uncached = timed[c.cache_read[timed] == 0]
    return LatencySplit(
        streamed=len(streamed),
        streamed_ttft_p50=_quantile(c.ttft[timed], 0.5),
        streamed_duration_p50=_quantile(c.duration[streamed], 0.5),
        plain=len(plain),
        plain_duration_p50=_quantile(c.duration[plain], 0.5),
        cached=len(cached),
        cached_ttft_p50=_quantile(c.ttft[cached], 0.5),
        uncached=len(uncached),
        uncached_ttft_p50=_quantile(c.ttft[uncached], 0.5),
    )


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
        latency=_latency_split(c, app),
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


def _touch_gaps(c: Columns, rows: np.ndarray) -> np.ndarray:
    """Per row: seconds since its parent prefix was last sent, by the call that ended with it (the previous turn)
    or by another call that resent it (a read refreshes a cache entry); NaN without a parent or an earlier sending.
    """
    starts, keys, parents = c.start_ns[rows], c.conversation[rows], c.parent[rows]
    reading = np.flatnonzero(parents != 0)
    event_key = np.concatenate([keys, parents[reading]])
    event_time = np.concatenate([starts, starts[reading]])
    is_read = np.concatenate([np.zeros(len(rows), np.int8), np.ones(len(reading), np.int8)])
    order = np.lexsort((is_read, event_time, event_key))
    key, time = event_key[order], event_time[order]
    since = np.full(len(order), np.nan)
    same = key[1:] == key[:-1]
    since[1:][same] = (time[1:][same] - time[:-1][same]) / 1e9
    gaps = np.full(len(rows), np.nan)
    read_events = np.flatnonzero(is_read[order] == 1)
    gaps[reading[order[read_events] - len(rows)]] = since[read_events]
    return gaps


def _conversation_stats(c: Columns) -> list[ConversationStats]:
    # The application's calls that completed: a failed or cancelled call wrote no cache entry, and a shadow copy
    # went to another model.
    rows = np.flatnonzero((c.turn >= 0) & (c.outcome != ERROR) & (c.outcome != CANCELLED) & (c.role == APPLICATION))
    if not len(rows):
        return []
    gaps = _touch_gaps(c, rows)
    estimate = c.input_estimate[rows].astype(np.float64)
    measured = c.input_tokens[rows].astype(np.float64)
    total = np.where(measured > 0, measured, estimate)
    scale = np.where((measured > 0) & (estimate > 0), measured / np.maximum(estimate, 1), 1.0)
    prefix = np.minimum(c.prefix_tokens[rows] * scale, total)
    turn = c.turn[rows]
    reusable = np.where(turn >= 1, np.clip(c.history_estimate[rows] * scale, prefix, total), 0.0)
    history = np.where(turn >= 1, reusable - prefix, 0.0)
    # A read either reaches the previous turn's entry or stops at the shared prefix (exact-prefix caching): count a
    # call's history as read when its cache read covers most of it, so that the estimates' rounding does not show
    # up as partial reads.
    read = np.where(c.cache_read[rows] - prefix > 0.5 * history, history, 0.0)
    out = []
    for group in _groups(c.task[rows]):
        group = group[np.argsort(c.start_ns[rows][group], kind="stable")]
        sample = _sample(group, SAMPLE_LIMIT)
        continuing = group[turn[group] >= 1]
        out.append(ConversationStats(
            task=c.tasks[int(c.task[rows[group[0]]])],
            calls=len(group),
            continuing=len(continuing),
            linked=int(np.count_nonzero(~np.isnan(gaps[continuing]))),
            history_tokens=int(history[continuing].sum()),
            history_read=int(read[continuing].sum()),
            turn=turn[sample],
            prefix=np.round(prefix[sample]),
            reusable=np.round(reusable[sample]),
            total=total[sample],
            gap=gaps[sample],
        ))
    return sorted(out, key=lambda s: s.task)


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
        conversations=_conversation_stats(c),
    )
