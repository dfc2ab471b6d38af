"""What each classic technique is worth on this service's own traffic: prompt caching, a cheaper model per task,
lower max_tokens, streaming; and where the data cannot say.

Every figure comes from the decisions (`_tune`) and the dataset's statistics of the same window; nothing is a
benchmark. Money is per 1,000 calls and per day at the observed rate; latency figures are medians of the calls
that were observed that way (an observational comparison on the same task and model, not a controlled one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuner import _charts
from tuner._blocks import Block, Chart, Heading, Para, Table
from tuner._dataset import Dataset, ModelStats
from tuner._format import count, money, seconds, share
from tuner._tune import TaskDecision

# Calls a latency median needs before the report compares it: fewer would make a comparison out of noise.
MIN_TIMED = 10
# A non-streamed task feels faster streamed when its full answer takes this many times its first token.
_FASTER = 2.0
Unknown = tuple[str, str]  # (task, what the data cannot say about it)


@dataclass(frozen=True)
class Rates:
    """Calls per day and per minute of a task at the observed rate (None: the window has no length)."""

    per_day: float | None

    @property
    def per_minute(self) -> float | None:
        return None if self.per_day is None else self.per_day / 1440

    def daily(self, per_call: float) -> str:
        return "-" if self.per_day is None else money(per_call * self.per_day)


def rates(dataset: Dataset, calls: int) -> Rates:
    days = dataset.days
    return Rates(calls / days if days else None)


def _serving(dataset: Dataset, d: TaskDecision) -> ModelStats | None:
    return next((s for s in dataset.for_task(d.task) if s.model == d.route.current), None)


def caching_rows(dataset: Dataset, decisions: list[TaskDecision]) -> tuple[list[tuple[str, ...]], list[Unknown]]:
    rows, unknown = [], []
    for d in decisions:
        estimate = d.costs.get(d.route.model) or d.costs.get(d.route.current)
        if estimate is None:
            continue
        worth = estimate.uncached_per_call - estimate.per_call
        rate = rates(dataset, d.calls)
        ttl = d.cache.ttl if d.conversation.ttl == "none" else f"{d.cache.ttl}; conversation {d.conversation.ttl}"
        serving = _serving(dataset, d)
        ttft = "-"
        if serving is not None:
            split = serving.latency
            if split.cached >= MIN_TIMED and split.uncached >= MIN_TIMED:
                ttft = (f"{seconds(split.cached_ttft_p50)} with a cache read vs {seconds(split.uncached_ttft_p50)} "
                        f"without ({split.cached} / {split.uncached} streamed calls)")
            else:
                ttft = "cannot say"
                unknown.append((d.task, f"how caching changes time to first token: {MIN_TIMED} streamed calls with "
                                        f"a cache read and {MIN_TIMED} without are needed (has {split.cached} and "
                                        f"{split.uncached})"))
        rows.append((d.task, ttl, money(worth * 1000), rate.daily(worth), money(estimate.realized * 1000), ttft))
    return rows, unknown


def model_rows(dataset: Dataset, decisions: list[TaskDecision]) -> tuple[list[tuple[str, ...]], list[Unknown]]:
    rows, unknown = [], []
    for d in decisions:
        current = d.costs.get(d.route.current)
        if current is None:
            continue
        rate = rates(dataset, d.calls)
        if d.route.changed and d.route.model in d.costs:
            name, status = d.route.model, "taken by this policy: shown within the margin"
        else:
            cheaper = sorted((c.per_call, n) for n, c in d.costs.items()
                             if n != d.route.current and c.per_call < current.per_call)
            if not cheaper:
                rows.append((d.task, d.route.current, "-", money(current.per_call * 1000), "-", "-",
                             "none: the serving model is the cheapest"))
                continue
            open_question = [n for _, n in cheaper if n not in d.route.rejected]
            name = open_question[0] if open_question else cheaper[0][1]
            if name in d.route.rejected:
                status = f"ruled out: {d.route.rejected[name]}"
            else:
                gap = d.route.gaps.get(name)
                status = "not proven yet: " + (f"{gap.pairs} paired verdicts, {min(gap.scores)} feedback scores"
                                               if gap is not None and gap.known else "no quality evidence")
                unknown.append((d.task, f"whether {name} is good enough (its decision says what evidence is "
                                        "missing)"))
        worth = current.per_call - d.costs[name].per_call
        rows.append((d.task, d.route.current, name, money(current.per_call * 1000),
                     money(d.costs[name].per_call * 1000), rate.daily(worth), status))
    return rows, unknown


def max_tokens_rows(dataset: Dataset, decisions: list[TaskDecision]) -> list[tuple[str, ...]]:
    rows = []
    for d in decisions:
        serving = _serving(dataset, d)
        if serving is None:
            continue
        today = serving.max_tokens
        chosen = d.cap.max_tokens or today
        rate = rates(dataset, d.calls).per_minute
        observed = np.asarray(serving.lengths)
        p99 = count(float(np.quantile(observed, 0.99))) if len(observed) else "-"
        beyond = share(float(np.mean(observed > chosen))) if len(observed) and chosen else "-"

        def reserved(cap: int | None, per_minute: float | None = rate) -> str:
            return "-" if cap is None or per_minute is None else count(cap * per_minute)

        rows.append((d.task, count(today) if today else "-", count(chosen) if chosen else "-", p99,
                     share(serving.truncation_rate), beyond, reserved(today), reserved(chosen)))
    return rows


def streaming_rows(dataset: Dataset, decisions: list[TaskDecision]
                   ) -> tuple[list[tuple[str, ...]], list[tuple[str, list[float | None]]], list[Unknown]]:
    rows, chart, unknown = [], [], []
    for d in decisions:
        serving = _serving(dataset, d)
        if serving is None:
            continue
        split = serving.latency
        total = split.streamed + split.plain
        if not total:
            continue
        ttft = split.streamed_ttft_p50 if split.streamed >= MIN_TIMED else None
        full = split.plain_duration_p50 if split.plain >= MIN_TIMED else None
        if split.plain == 0:
            verdict = "already streamed"
        elif ttft is None:
            verdict = "cannot say"
            unknown.append((d.task, f"what streaming would change: {MIN_TIMED} streamed calls are needed to measure "
                                    f"time to first token on (has {split.streamed})"))
        elif full is None:
            verdict = "cannot say"
            unknown.append((d.task, f"what streaming would change: too few non-streamed calls ({split.plain}) to "
                                    "compare"))
        elif full >= _FASTER * ttft:
            verdict = f"yes: the first token comes {full / ttft:.0f}x sooner than the whole answer"
        else:
            verdict = "little: the whole answer takes less than twice the first token"
        rows.append((d.task, share(split.streamed / total), seconds(ttft), seconds(split.streamed_duration_p50),
                     seconds(full), verdict))
        chart.append((d.task, [ttft, full]))
    return rows, chart, unknown


def technique_blocks(dataset: Dataset, decisions: list[TaskDecision], reuse: list[tuple[str, list[float]]],
                     charted: set[str]) -> list[Block]:
    """The section; `reuse`: per task, the share of prefixed calls reusing their prefix within 5 minutes and 1 hour;
    `charted`: the tasks drawn in charts (all have table rows)."""
    if not decisions:
        return []
    caching, unknown_caching = caching_rows(dataset, decisions)
    models, unknown_models = model_rows(dataset, decisions)
    streams, stream_chart, unknown_streams = streaming_rows(dataset, decisions)
    blocks: list[Block] = [
        Heading("What each technique is worth here"),
        Para("Computed from this window's own calls, per task, at the observed rate; latencies are medians of the "
             "calls observed each way on the serving model (observational: the calls differ in more than the "
             "technique)."),
        Heading("Prompt caching", 3),
        Para("Input cost caching saves against sending every prompt uncached (shared prefix at its best TTL, and the "
             "conversation history where calls continue one); 'already realised' is the part the traffic gets today."),
        Table(("task", "TTL", "saved per 1k calls", "saved per day", "already realised per 1k", "time to first token"),
              caching, "lllrrw"),
    ]
    if reuse:
        title = ("Prompt reuse: share of calls that follow the previous call with the same prefix within each TTL "
                 "(prefixes long enough to cache)")
        series = ("within 5 minutes", "within 1 hour")
        blocks.append(Chart(title, _charts.grouped_shares(reuse, series, "calls reusing a prefix", "reuse")))
    blocks += [
        Heading("A cheaper model per task", 3),
        Para("Each model priced with its own best caching; 'worth per day' is what moving the task would save at the "
             "observed rate, whether or not its quality is proven yet."),
        Table(("task", "serving", "cheapest candidate", "serving per 1k", "candidate per 1k", "worth per day",
               "status"), models, "lllrrrw"),
        Heading("Lower max_tokens", 3),
        Para("max_tokens does not change what a call costs (output is billed as generated). It bounds the longest "
             "answers, and the API reserves it against the output-tokens-per-minute limit when it admits a call: a "
             "lower cap leaves headroom for more calls in flight. Only the calls beyond the cap change latency: "
             "streamed ones end at the cap, non-streamed ones are sent again in full by the safety net."),
        Table(("task", "max_tokens today", "chosen", "output p99", "truncated today", "beyond the chosen cap",
               "reserved tokens/min today", "under the policy"), max_tokens_rows(dataset, decisions), "lrrrrrrr"),
        Heading("Streaming", 3),
        Para("For a caller who waits for the answer, a streamed call shows its first token after the time to first "
             "token; a non-streamed one shows nothing until the whole answer is there."),
        Table(("task", "streamed", "TTFT p50 (streamed)", "duration p50 (streamed)", "duration p50 (not streamed)",
               "would feel faster streamed"), streams, "lrrrrw"),
    ]
    stream_chart = [row for row in stream_chart if row[0] in charted]
    if any(v is not None for _, values in stream_chart for v in values):
        blocks.append(Chart("Time until the caller sees the answer start: streamed vs not streamed (medians)",
                            _charts.grouped_seconds(stream_chart, ("first token, streamed", "whole answer, not "
                                                                   "streamed"), "seconds", "streaming")))
    unknown = unknown_caching + unknown_models + unknown_streams
    if dataset.days is None or dataset.days < 1 / 24:
        unknown.insert(0, ("all", "money per day: the window is shorter than an hour, the per-day figures "
                                  "extrapolate from it"))
    blocks.append(Heading("Where the data cannot say", 3))
    if unknown:
        blocks.append(Table(("task", "what the data cannot say"), unknown, "lw"))
    else:
        blocks.append(Para("Every figure above rests on enough calls."))
    return blocks
