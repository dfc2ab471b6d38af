"""The report a person reads before applying a policy: Markdown, and a self-contained HTML page with charts.

Both renderings come from one list of blocks, so they cannot disagree; charts are inline SVG (HTML only).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from otel_claude.policy import Policy
from tuner import _svg
from tuner._dataset import Dataset
from tuner._issues import Issues
from tuner._limits import LimitDecision
from tuner._tune import TaskDecision


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]


@dataclass(frozen=True)
class Chart:
    svg: str


Block = Heading | Para | Table | Chart


def _money(value: float) -> str:
    return f"${value:,.6f}" if abs(value) < 1 else f"${value:,.2f}"


def summary_rows(decisions: list[TaskDecision]) -> list[tuple[str, ...]]:
    """One row per task: what changes and what it saves (also the CLI's terminal table)."""
    rows = []
    for d in decisions:
        # From the model the callers ask for: under an earlier policy's route, that is not the one the calls ran on.
        caller = d.asked_for
        model = caller if d.route.model == caller else f"{caller} -> {d.route.model}"
        if d.segments:
            model = f"{caller} -> by input size: " + " / ".join(s.segment.route.model for s in d.segments)
        plans = []
        if d.route.evaluate_model:
            plans.append(f"evaluate {d.route.evaluate_model} {d.route.evaluate_share:.1%}")
        if d.route.explore_model:
            plans.append(f"explore {d.route.explore_model} {d.route.explore_share:.1%}")
        explore = "; ".join(plans) or "-"
        rows.append(
            (
                d.task,
                str(d.calls),
                model,
                str(d.cap.max_tokens) if d.cap.max_tokens else "keep",
                d.cache.ttl if d.conversation.ttl == "none" else f"{d.cache.ttl}, conversation {d.conversation.ttl}",
                explore,
                _money(d.cost_before),
                _money(d.cost_after),
                _money(d.saving_per_call * 1000),
                _money(d.saving_per_call * d.calls),
            )
        )
    return rows


SUMMARY_HEADERS = (
    "task",
    "calls",
    "model",
    "max_tokens",
    "cache",
    "evidence plan",
    "cost/call before",
    "cost/call after",
    "saving /1k calls",
    "saving at volume",
)


def _task_blocks(dataset: Dataset, d: TaskDecision) -> list[Block]:
    blocks: list[Block] = [
        Heading(f"Task `{d.task}`", 3),
        Para(f"Routing: {d.route.reason}."),
        *(
            Para(
                f"Inputs {s.segment.input_min}-{s.segment.input_max or 'up'} tokens ({s.segment.share:.0%} of calls): "
                f"{s.segment.route.reason}; max_tokens: {s.cap.reason}."
            )
            for s in d.segments
        ),
        Para(f"max_tokens: {d.cap.reason}."),
        Para(f"Caching: {d.cache.reason}."),
        *_conversation_blocks(d),
    ]
    rows = []
    for s in dataset.for_task(d.task):
        q = s.quality
        gap = d.route.gaps.get(s.model)
        quality = f"{q.mean:.3f} (n={q.n})" if q else "no scores"
        if gap is not None and gap.known:
            quality += f"; gap vs {d.route.current} [{gap.low:+.3f}, {gap.high:+.3f}] ({gap.pairs} paired)"
        ttft = f"{s.ttft_p95:.2f}s" if s.ttft_p95 is not None else "-"
        rows.append(
            (
                s.model,
                f"{s.calls} ({s.explore_calls} explored)" if s.explore_calls else str(s.calls),
                _money(s.cost_per_call),
                quality,
                ttft,
                f"{s.truncation_rate:.2%}",
                str(s.refusals),
                str(s.errors),
                str(s.cancelled),
            )
        )
    headers = ("model", "calls", "cost/call", "feedback; anytime-valid quality gap", "p95 TTFT", "truncated",
               "refusals", "errors", "cancelled")
    blocks.append(Table(headers, rows))
    target = next((s for s in dataset.for_task(d.task) if s.model == d.route.model), None)
    if target is not None:
        title = f"{d.task} on {target.model}: output tokens"
        blocks.append(Chart(_svg.histogram(target.lengths, d.cap.max_tokens, target.max_tokens, title)))
    return blocks


def _conversation_blocks(d: TaskDecision) -> list[Block]:
    evidence = d.conversation.evidence
    if not evidence:
        return []
    blocks: list[Block] = [Para(f"Conversation caching: {d.conversation.reason}.")]
    by_turn = evidence.get("history_by_turn")
    if isinstance(by_turn, list) and by_turn:
        rows = [(str(r["turns"]), str(r["calls"]), str(r["history_tokens"]), str(r["input_tokens"])) for r in by_turn]
        blocks.append(Table(("turn", "calls", "history tokens resent", "input tokens"), rows))
    facts = []
    gaps = evidence.get("gap_seconds")
    if isinstance(gaps, dict):
        facts.append(f"gaps between turns p50 {gaps['p50']} s, p90 {gaps['p90']} s")
    predicted = evidence.get("predicted_history_hit_rate")
    if isinstance(predicted, dict):
        facts += [f"history hit rate expected at {ttl}: {rate:.1%}" for ttl, rate in predicted.items()]
    if "observed_history_hit_rate" in evidence:
        facts.append(f"observed in these calls: {evidence['observed_history_hit_rate']:.1%}")
    if d.conversation.saving_per_call:
        facts.append(f"saving {_money(d.conversation.saving_per_call * 1000)} per 1k calls")
    if facts:
        blocks.append(Para("; ".join(facts) + "."))
    return blocks


def build_blocks(policy: Policy, dataset: Dataset, decisions: list[TaskDecision], issues: Issues) -> list[Block]:
    window = policy.metadata.get("data_window", {})
    blocks: list[Block] = [
        Heading(f"Tuning report for policy {policy.version}", 1),
        Para(
            f"Data window {window.get('start')} to {window.get('end')}: {dataset.spans} spans, {dataset.calls} calls, "
            f"{dataset.feedback} feedback scores ({dataset.feedback_unmatched} without a matching call), "
            f"{dataset.spans - dataset.calls - dataset.feedback} other spans ignored. "
            "Review the decisions below before applying the policy; start it in `mode: shadow` to compare."
        ),
    ]
    if issues.total:
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(issues.counts.items()))
        blocks.append(Para(f"Skipped input: {counts}. First examples:"))
        blocks.append(Table(("where: why",), [(e,) for e in issues.examples]))
    total = sum(d.saving_per_call * d.calls for d in decisions)
    blocks += [
        Heading("Decisions"),
        Para(f"Expected saving at the observed volume: {_money(total)}."),
        Table(SUMMARY_HEADERS, summary_rows(decisions)),
        Heading("Charts"),
        Chart(
            _svg.bars(
                [(f"{m.task} / {m.model}", m.cost_per_call * 1000) for m in dataset.models], "Cost per 1,000 calls", "$"
            )
        ),
        Chart(
            _svg.intervals(
                [
                    (f"{d.task}: {name} - {d.route.current}", gap.estimate, gap.low, gap.high)
                    for d in decisions
                    for name, gap in sorted(d.route.gaps.items())
                    if gap.known and gap.estimate is not None
                ],
                "Quality gap to the current model (anytime-valid bounds)",
            )
        ),
        Chart(
            _svg.bars(
                [
                    (f"{p.task} / {p.fingerprint[:8]} <{ttl}", p.gaps_within[ttl] / p.gaps * 100)
                    for p in dataset.prefixes
                    if p.gaps
                    for ttl in sorted(p.gaps_within)
                ],
                "Cache reuse: share of gaps between calls under each TTL",
                "%",
            )
        ),
        Heading("Per task"),
    ]
    for d in decisions:
        blocks += _task_blocks(dataset, d)
    blocks += [Heading("Options"), Table(("option", "value"), _options(policy))]
    return blocks


def _per_minute(value: int | None) -> str:
    return f"{value:,}" if value is not None else "-"


def limit_blocks(decisions: list[LimitDecision]) -> list[Block]:
    """The rate-limit section: per model what the API said, what the policy's `limits` enforce, and why."""
    if not decisions:
        return []
    rows = []
    for d in decisions:
        e, limit = d.evidence, d.limit
        rows.append((
            d.model, str(d.calls), str(e["rate_limited"]), str(e["overloaded"]),
            f"{e['retried_calls']} ({e['retries']} retries)", str(e["waited_for_admission"]),
            str(limit.concurrency) if limit and limit.concurrency else "-",
            _per_minute(limit.requests_per_minute if limit else None),
            _per_minute(limit.input_tokens_per_minute if limit else None),
            _per_minute(limit.output_tokens_per_minute if limit else None),
            f"{d.waste['unused_share_of_reserved']:.0%} unused" if d.waste else "-",
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
               "input tokens/min", "output tokens/min", "max_tokens waste"), rows),
    ]
    for d in decisions:
        blocks.append(Para(f"`{d.model}`: {d.reason}."))
        if d.limit is not None and any(t[2] or t[3] for t in d.timeline):
            title = f"{d.model}: 429s and 529s per minute (from the first call)"
            blocks.append(Chart(_svg.bars([(f"minute {t[0]}", t[2] + t[3]) for t in d.timeline[-60:]], title, "")))
    return blocks


def _options(policy: Policy) -> list[tuple[str, ...]]:
    options = policy.metadata.get("options", {})
    return [(key, str(options[key])) for key in sorted(options)]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(blocks: list[Block]) -> str:
    out = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}\n")
        elif isinstance(block, Para):
            out.append(block.text + "\n")
        elif isinstance(block, Table):
            out.append("| " + " | ".join(block.headers) + " |")
            out.append("|" + "---|" * len(block.headers))
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("")
        else:
            out.append("_(chart in the HTML report)_\n")
    return "\n".join(out)


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0 1em}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}"
    "th{background:#f3f3f3}code{background:#f3f3f3;padding:0 3px}svg{display:block;margin:0.5em 0}"
)


def _inline(text: str) -> str:
    parts = escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def render_html(blocks: list[Block]) -> str:
    title = next((b.text for b in blocks if isinstance(b, Heading)), "Tuning report")
    out = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>',
        f"<style>{_STYLE}</style></head><body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            out.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{escape(h)}</th>" for h in block.headers)
            rows = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in block.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            out.append(block.svg)
    out.append("</body></html>")
    return "\n".join(out)
