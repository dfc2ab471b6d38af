"""The report a platform engineer approves a policy from: what changes, what it saves per day and per month, the
actual reason for each decision and what would change it, what each technique is worth on this traffic, and the
evidence behind it all.

Numbers come from the decisions' unrounded values, rounded only for display (`_format`); the Markdown and the HTML
page render one list of blocks (`_blocks`); charts are matplotlib SVG inline (`_charts`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from otel_claude.catalog import resolve
from otel_claude.policy import Policy
from tuner import _charts
from tuner._blocks import Block, Chart, Heading, Para, Table, render_html, render_markdown
from tuner._dataset import Dataset
from tuner._format import DAYS_PER_MONTH, count, gap, money, seconds, share, window
from tuner._issues import Issues
from tuner._limits import LimitDecision
from tuner._routing import RouteDecision, RoutingOptions
from tuner._techniques import rates, technique_blocks
from tuner._tune import TaskDecision, TuneOptions

__all__ = ["SUMMARY_HEADERS", "build_blocks", "limit_blocks", "render_html", "render_markdown", "summary_rows"]

# Tasks drawn with charts of their own, the costliest first; past it a task has its tables only (charts cost time).
CHARTED_TASKS = 20


@dataclass(frozen=True)
class Saving:
    """What a decision is worth: per 1,000 calls, and per day and month at the observed rate (None: unknown)."""

    per_call: float
    per_day: float | None

    @property
    def per_month(self) -> float | None:
        return None if self.per_day is None else self.per_day * DAYS_PER_MONTH


def saving(d: TaskDecision, days: float | None) -> Saving:
    return Saving(d.saving_per_call, d.saving_per_call * d.calls / days if days else None)


def _optional_money(value: float | None) -> str:
    return "-" if value is None else money(value)


def model_change(d: TaskDecision) -> str:
    caller = d.asked_for
    if d.segments:
        return f"{caller} -> by input size: " + " / ".join(s.segment.route.model for s in d.segments)
    return caller if d.route.model == caller else f"{caller} -> {d.route.model}"


def _plan(route: RouteDecision) -> str:
    plans = []
    if route.evaluate_model and route.evaluate_share:
        plans.append(f"evaluate {route.evaluate_model} on {share(route.evaluate_share)}")
    if route.explore_model and route.explore_share:
        plans.append(f"explore {route.explore_model} on {share(route.explore_share)}")
    return "; ".join(plans) or "-"


def _cap(d: TaskDecision) -> str:
    if d.cap.buckets:
        return "by input size: " + " / ".join(count(b.max_tokens) for b in d.cap.buckets)
    return count(d.cap.max_tokens) if d.cap.max_tokens else "keep"


def _cache(d: TaskDecision) -> str:
    return d.cache.ttl if d.conversation.ttl == "none" else f"{d.cache.ttl}; conversation {d.conversation.ttl}"


SUMMARY_HEADERS = (
    "task", "calls", "model", "max_tokens", "cache", "evidence plan", "per 1k calls today", "under the policy",
    "saving per 1k calls", "saving per day", "per month",
)
_SUMMARY_ALIGN = "lrllllrrrrr"


def summary_rows(decisions: list[TaskDecision], days: float | None) -> list[tuple[str, ...]]:
    """One row per task: what changes and what it saves (the report's table, also the CLI's terminal table)."""
    rows = []
    for d in decisions:
        worth = saving(d, days)
        rows.append((
            d.task, count(d.calls), model_change(d), _cap(d), _cache(d), _plan(d.route),
            money(d.cost_before * 1000), money(d.cost_after * 1000), money(worth.per_call * 1000),
            _optional_money(worth.per_day), _optional_money(worth.per_month),
        ))
    return rows


def _needed_for_minimum(route: RouteDecision, name: str, options: RoutingOptions) -> int:
    gap_ = route.gaps[name]
    return max(options.min_samples - (gap_.pairs + min(gap_.scores)), 0)


def _days_for(verdicts: int, route: RouteDecision, calls_per_day: float | None) -> str:
    share_ = route.evaluate_share or route.explore_share or 0.0
    if not share_:
        return ""
    if calls_per_day is None:
        return ""
    per_day = share_ * calls_per_day
    return f"; at {share(share_)} of about {count(calls_per_day)} calls a day, about {_days(verdicts / per_day)}"


def _days(days: float) -> str:
    if days < 1:
        return f"{max(days * 24, 0.1):.1f} hours"
    return f"{days:.0f} days" if days >= 10 else f"{days:.1f} days"


def what_would_change(d: TaskDecision, options: RoutingOptions, calls_per_day: float | None) -> str:
    """The evidence (or option) that would change the routing decision, with how long it takes at this volume."""
    route = d.route
    if route.changed and route.model != route.reference:
        return (f"re-checked every window: evidence that {route.model} falls more than {options.quality_margin:g} "
                f"below {route.reference} sends the task back")
    if route.changed:
        return f"a new candidate shown within the margin of {route.reference}"
    name = route.evaluate_model or route.explore_model
    if name is not None:
        gap_ = route.gaps[name]
        if gap_.known and gap_.within(route.slack):
            more = _needed_for_minimum(route, name, options)
            return (f"{more:,} more paired verdicts or feedback scores on {name} reach --min-samples "
                    f"{options.min_samples}" + _days_for(more, route, calls_per_day))
        if route.needed is not None:
            return (f"about {route.needed:,} more paired verdicts on {name} settle it"
                    + _days_for(route.needed, route, calls_per_day))
        if gap_.known and not gap_.pairs:
            return (f"{name} has feedback scores only ({gap_.scores[0]:,} against {gap_.scores[1]:,}), too few to "
                    f"bound the gap within {route.slack:.3g}; paired verdicts settle it far sooner: the first ones "
                    f"tell how many are needed, {options.min_samples} are the least a model is judged on"
                    + _days_for(options.min_samples, route, calls_per_day))
        if not gap_.known:
            return (f"the first verdicts on {name} tell how many are needed; {options.min_samples} are the least a "
                    f"model is judged on" + _days_for(options.min_samples, route, calls_per_day))
        return (f"the estimate for {name} sits at the margin: more verdicts may not settle it; a wider "
                f"--quality-margin would")
    cheaper = [n for n, c in d.costs.items()
               if n != route.current and route.current in d.costs and c.per_call < d.costs[route.current].per_call]
    if not cheaper:
        return "a cheaper model among --candidates, or new prices"
    if all(n in route.rejected for n in cheaper):
        return "a new candidate model, or a wider --quality-margin (a model shown worse stays ruled out)"
    return "paired evaluation (--evaluate-share above 0) or feedback with otel_claude.feedback()"


def _decision_table(d: TaskDecision, options: RoutingOptions, calls_per_day: float | None) -> Table:
    rows = [("routing", model_change(d), d.route.reason, what_would_change(d, options, calls_per_day))]
    rows += [
        (f"routing, inputs {s.segment.input_min:,}-{f'{s.segment.input_max:,}' if s.segment.input_max else 'up'} "
         f"tokens ({share(s.segment.share)} of calls)", s.segment.route.model, s.segment.route.reason, "")
        for s in d.segments
    ]
    rows.append(("max_tokens", _cap(d), d.cap.reason, _cap_change(d)))
    rows.append(("prompt cache", d.cache.ttl, d.cache.reason, "reuse gaps moving across a TTL, or prompts growing "
                 "past (or shrinking below) the model's cache minimum"))
    if d.conversation.evidence:
        rows.append(("conversation cache", d.conversation.ttl, d.conversation.reason,
                     "the time users take between turns, or how much history they resend"))
    return Table(("decision", "value", "reason", "what would change it"), rows, "llww")


def _cap_change(d: TaskDecision) -> str:
    if d.cap.max_tokens is None:
        return "enough completed calls on the chosen model for a conformal bound"
    return "a change in the tail of output lengths (it is refitted every window)"


def _model_rows(dataset: Dataset, d: TaskDecision) -> list[tuple[str, ...]]:
    rows = []
    observed = {s.model: s for s in dataset.for_task(d.task)}
    for name in sorted(set(d.costs) | set(observed)):
        s, estimate, gap_ = observed.get(name), d.costs.get(name), d.route.gaps.get(name)
        if name == d.route.current:
            quality = "serving model (reference)"
        elif gap_ is not None and gap_.known:
            estimate_text = f", estimate {gap(gap_.estimate)}" if gap_.estimate is not None else ""
            quality = f"[{gap(gap_.low)}, {gap(gap_.high)}]{estimate_text}"
        else:
            quality = "no evidence"
        evidence = []
        if gap_ is not None:
            evidence.append(f"{gap_.pairs:,} paired verdicts"
                            + (f" ({share(gap_.unsettled_share)} unsettled)" if gap_.pairs else ""))
        if s is not None and s.quality is not None:
            evidence.append(f"feedback mean {s.quality.mean:.3f} (n={s.quality.n:,})")
        serving_cost = d.costs[d.route.current].per_call if d.route.current in d.costs else None
        if name == d.route.model:
            status = "chosen"
        elif name in d.route.rejected:
            status = "ruled out: " + d.route.rejected[name]
        elif name in (d.route.evaluate_model, d.route.explore_model):
            status = "gathering evidence"
        elif estimate is not None and serving_cost is not None and estimate.per_call >= serving_cost:
            status = "costs more"
        else:
            status = "-"
        calls = "-" if s is None else count(s.calls) + (f" (+{s.shadow_calls:,} shadow)" if s.shadow_calls else "")
        ran = s is not None and s.calls > 0
        rows.append((
            name, status, calls, money(estimate.per_call * 1000) if estimate else "no price",
            money(s.cost_per_call * 1000) if ran else "-", quality, "; ".join(evidence) or "-",
            seconds(s.ttft_p95) if s is not None else "-", share(s.truncation_rate) if ran else "-",
            count(s.errors) if ran else "-", count(s.cancelled) if ran else "-",
        ))
    return rows


# Errors and cancellations apart: a cancelled call was abandoned by its caller, not failed by the model.
_MODEL_HEADERS = ("model", "status", "calls", "expected per 1k (best caching)", "observed per 1k",
                  "quality gap to the serving model", "evidence", "p95 TTFT", "truncated", "errors", "cancelled")


def _task_blocks(dataset: Dataset, d: TaskDecision, options: RoutingOptions, charted: bool) -> list[Block]:
    calls_per_day = rates(dataset, d.calls).per_day
    volume = f"{count(d.calls)} calls" + (f", about {count(calls_per_day)} a day" if calls_per_day else "")
    worth = saving(d, dataset.days)
    blocks: list[Block] = [
        Heading(f"Task `{d.task}`", 3),
        Para(f"{volume}; {money(d.cost_before * 1000)} per 1,000 calls today, {money(d.cost_after * 1000)} under the "
             f"policy: saves {money(worth.per_call * 1000)} per 1,000 calls"
             + (f", {money(worth.per_day)} per day" if worth.per_day is not None else "") + "."),
        _decision_table(d, options, calls_per_day),
        Table(_MODEL_HEADERS, _model_rows(dataset, d), "lwrrrlwrrrr"),
        *_conversation_blocks(d),
    ]
    if not charted:
        return blocks
    gaps = [
        _charts.Gap(name, g.low, g.high, g.estimate)
        for name, g in sorted(d.route.gaps.items()) if g.known
    ]
    if gaps:
        blocks.append(Chart(f"{d.task}: quality gap to {d.route.current} and the margin the decision allows",
                            _charts.quality_gaps(gaps, d.route.slack, d.route.current, f"gap-{d.task}")))
    target = next((s for s in dataset.for_task(d.task) if s.model == d.route.model), None)
    if target is not None and len(target.lengths):
        blocks.append(Chart(f"{d.task} on {target.model}: output length per call, the chosen cap and today's",
                            _charts.lengths(target.lengths, d.cap.max_tokens, target.max_tokens, f"len-{d.task}")))
    return blocks


def _conversation_blocks(d: TaskDecision) -> list[Block]:
    evidence = d.conversation.evidence
    if not evidence:
        return []
    blocks: list[Block] = []
    by_turn = evidence.get("history_by_turn")
    if isinstance(by_turn, list) and by_turn:
        rows = [(str(r["turns"]), count(r["calls"]), count(r["history_tokens"]), count(r["input_tokens"]))
                for r in by_turn]
        blocks.append(Table(("turn", "calls", "history tokens resent", "input tokens"), rows, "lrrr"))
    facts = []
    gaps = evidence.get("gap_seconds")
    if isinstance(gaps, dict):
        facts.append(f"time between turns: median {gaps['p50']:,.0f} s, 90th percentile {gaps['p90']:,.0f} s")
    predicted = evidence.get("predicted_history_hit_rate")
    if isinstance(predicted, dict):
        facts += [f"history cache hit rate expected at {ttl}: {share(rate)}" for ttl, rate in predicted.items()]
    if "observed_history_hit_rate" in evidence:
        facts.append(f"observed in these calls: {share(evidence['observed_history_hit_rate'])}")
    if d.conversation.saving_per_call:
        facts.append(f"saves {money(d.conversation.saving_per_call * 1000)} per 1,000 calls")
    if facts:
        blocks.append(Para("Conversations: " + "; ".join(facts) + "."))
    return blocks


def _headline(dataset: Dataset, decisions: list[TaskDecision]) -> Para:
    calls = sum(d.calls for d in decisions)
    saved = sum(d.saving_per_call * d.calls for d in decisions)
    spend = sum(d.cost_before * d.calls for d in decisions)
    per_1k = saved / calls * 1000 if calls else 0.0
    days = dataset.days
    text = f"Under this policy the tuned tasks are expected to cost {money(per_1k)} less per 1,000 calls"
    if spend > 0:
        text += f" ({share(saved / spend)} of their spend today)"
    if days:
        text += (f": {money(saved / days)} per day, {money(saved / days * DAYS_PER_MONTH)} per {DAYS_PER_MONTH}-day "
                 f"month at the observed rate of {count(calls / days)} calls a day")
    else:
        text += "; the window has no length, so no rate per day"
    evaluation = sum(dataset.evaluation_cost.values())
    if evaluation:
        text += (f". Paired evaluation spent {money(evaluation)} in this window"
                 + (f" ({money(evaluation / days)} per day)" if days else "") + ", not counted in the costs above")
    return Para(text + ".")


def _reuse(dataset: Dataset, decisions: list[TaskDecision]) -> list[tuple[str, list[float]]]:
    rows = []
    for d in decisions:
        info = resolve(d.route.model)
        least = info.cache_min_tokens if info is not None else 0
        prefixes = [p for p in dataset.prefixes if p.task == d.task and p.prefix_tokens >= least]
        calls = sum(p.calls for p in prefixes)
        if calls:
            rows.append((d.task, [sum(p.gaps_within[ttl] for p in prefixes) / calls for ttl in ("5m", "1h")]))
    return rows


def build_blocks(policy: Policy, dataset: Dataset, decisions: list[TaskDecision], issues: Issues,
                 options: TuneOptions | None = None) -> list[Block]:
    options = options or TuneOptions()
    meta_window = policy.metadata.get("data_window", {})
    blocks: list[Block] = [
        Heading(f"Tuning report for policy {policy.version}", 1),
        Para(f"Data window {meta_window.get('start')} to {meta_window.get('end')} ({window(dataset.days)}): "
             f"{count(dataset.calls)} calls, {count(dataset.feedback)} feedback scores "
             f"({count(dataset.feedback_unmatched)} without a matching call), "
             f"{count(sum(len(v.times) for v in dataset.verdicts))} paired verdicts, {count(dataset.spans)} spans in "
             "all. Review the decisions below before applying the policy; start it in `mode: shadow` to compare."),
    ]
    if issues.total:
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(issues.counts.items()))
        blocks.append(Para(f"Skipped input: {counts}. First examples:"))
        blocks.append(Table(("where: why",), [(e,) for e in issues.examples], "w"))
    blocks += [
        Heading("Decisions"),
        _headline(dataset, decisions),
        Table(SUMMARY_HEADERS, summary_rows(decisions, dataset.days), _SUMMARY_ALIGN),
    ]
    by_spend = sorted(decisions, key=lambda d: (-d.cost_before * d.calls, d.task))
    charted = {d.task for d in by_spend[:CHARTED_TASKS]}
    if len(decisions) > CHARTED_TASKS:
        blocks.append(Para(f"Charts are drawn for the {CHARTED_TASKS} tasks with the largest spend; the other "
                           f"{len(decisions) - CHARTED_TASKS} have their tables only."))
    if decisions:
        blocks.append(Chart("Cost per 1,000 calls per task: today and under the policy",
                            _charts.cost_before_after([(d.task, d.cost_before * 1000, d.cost_after * 1000)
                                                       for d in decisions if d.task in charted], "cost")))
    blocks.append(Heading("Each decision, its reason and what would change it"))
    for d in decisions:
        blocks += _task_blocks(dataset, d, options.routing, d.task in charted)
    blocks += technique_blocks(dataset, decisions, [r for r in _reuse(dataset, decisions) if r[0] in charted],
                               charted)
    blocks += [Heading("Options"), Table(("option", "value"), _options(policy), "ll")]
    return blocks


def _per_minute(value: int | None) -> str:
    return count(value) if value is not None else "-"


def limit_blocks(decisions: list[LimitDecision]) -> list[Block]:
    """The rate-limit section: per model what the API said, what the policy's `limits` enforce, and why."""
    if not decisions:
        return []
    rows = []
    for d in decisions:
        e, limit = d.evidence, d.limit
        rows.append((
            d.model, count(d.calls), count(e["rate_limited"]), count(e["overloaded"]),
            f"{count(e['retried_calls'])} ({count(e['retries'])} retries)", count(e["waited_for_admission"]),
            count(limit.concurrency) if limit and limit.concurrency else "-",
            _per_minute(limit.requests_per_minute if limit else None),
            _per_minute(limit.input_tokens_per_minute if limit else None),
            _per_minute(limit.output_tokens_per_minute if limit else None),
            f"{share(d.waste['unused_share_of_reserved'])} unused" if d.waste else "-",
        ))
    blocks: list[Block] = [
        Heading("Rate limits"),
        Para("Per model: 429 (rate limited) and 529 (overloaded) responses, retried calls and calls that waited for "
             "admission, and the client-side limit the policy's `limits` enforce (concurrency; requests, input and "
             "output tokens per minute). Limits come from the API's rate-limit headers, concurrency from the paced "
             "rate times a confidence bound on service time; a model far from its limits gets none. Output tokens "
             "are charged at `max_tokens` when a call is admitted: 'max_tokens waste' flags caps far above what "
             "calls use while the output limit ran low."),
        Table(("model", "calls", "429s", "529s", "retried", "waited", "concurrency", "requests/min",
               "input tokens/min", "output tokens/min", "max_tokens waste"), rows, "lrrrrrrrrrr"),
    ]
    for d in decisions:
        blocks.append(Para(f"`{d.model}`: {d.reason}."))
        if d.limit is not None and any(t[2] or t[3] for t in d.timeline):
            recent = d.timeline[-60:]
            blocks.append(Chart(f"{d.model}: 429 and 529 responses per minute",
                                _charts.per_minute([t[0] for t in recent], [t[2] + t[3] for t in recent],
                                                   "429 + 529 responses", f"limits-{d.model}")))
    return blocks


def _option_value(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_option_value(v) for v in value) or "none"
    return str(value)


def _options(policy: Policy) -> list[tuple[str, ...]]:
    options = policy.metadata.get("options", {})
    return [(key, _option_value(options[key])) for key in sorted(options)]
