"""The report tells the truth about the decisions: the numbers shown are the decisions' own values rounded for
display, money is per 1,000 calls and per day and month at the observed rate, each decision states its actual reason
and what would change it, and the techniques section is computed from the traffic (saying where it cannot tell)."""

from __future__ import annotations

import re
from html import escape
from pathlib import Path

import pytest
from span_sets import HAIKU, SONNET, T0, report_traffic

from otel_claude._cli import main as otel_claude
from tuner import synthetic as syn
from tuner._blocks import Chart, Heading, Para, Table, render_html, render_markdown
from tuner._dataset import Dataset
from tuner._format import money, seconds
from tuner._ingest import load_dataset
from tuner._issues import Issues
from tuner._report import build_blocks, summary_rows
from tuner._tune import TaskDecision, TuneOptions, build_policy, decide_all


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Dataset, list[TaskDecision], list]:
    path = report_traffic(tmp_path_factory.mktemp("report") / "spans.jsonl")
    dataset, _issues = load_dataset([str(path)])
    options = TuneOptions()
    decisions = decide_all(dataset, options)
    policy = build_policy(dataset, decisions, options)
    return dataset, decisions, build_blocks(policy, dataset, decisions, Issues(), options)


def _table(blocks: list, first_header: str, after: str | None = None) -> Table:
    """The first table whose first header is `first_header` (after the heading `after`, when given)."""
    start = 0
    if after is not None:
        start = next(i for i, b in enumerate(blocks) if isinstance(b, Heading) and b.text == after)
    return next(b for b in blocks[start:] if isinstance(b, Table) and b.headers[0] == first_header)


def _row(table: Table, key: str) -> dict[str, str]:
    row = next(r for r in table.rows if r[0] == key)
    return dict(zip(table.headers, row, strict=True))


def _decision(decisions: list[TaskDecision], task: str) -> TaskDecision:
    return next(d for d in decisions if d.task == task)


def test_money_reads_the_same_way_everywhere() -> None:
    assert money(0.95979) == "$0.960" and money(6.3312) == "$6.33" and money(1234.4) == "$1,234"
    assert money(0.0026301) == "$0.00263" and money(0) == "$0" and money(-0.5) == "-$0.500"
    assert seconds(0.2) == "200 ms" and seconds(2.5) == "2.50 s" and seconds(None) == "-"


def test_money_is_per_1000_calls_per_day_and_per_month_at_the_observed_rate(tuned: tuple) -> None:
    dataset, decisions, blocks = tuned
    assert dataset.days == pytest.approx(2.0, rel=1e-6)
    classify = _decision(decisions, "classify")
    assert classify.route.model == HAIKU and classify.saving_per_call > 0
    row = _row(_table(blocks, "task", "Decisions"), "classify")
    per_day = classify.saving_per_call * classify.calls / dataset.days
    assert row["calls"] == "1,200" and row["model"] == f"{SONNET} -> {HAIKU}"
    assert row["per 1k calls today"] == money(classify.cost_before * 1000)
    assert row["under the policy"] == money(classify.cost_after * 1000)
    assert row["saving per 1k calls"] == money(classify.saving_per_call * 1000)
    assert row["saving per day"] == money(per_day) and row["per month"] == money(per_day * 30)
    # The CLI prints the same rows.
    assert tuple(row.values()) in summary_rows(decisions, dataset.days)

    headline = next(b.text for b in blocks if isinstance(b, Para) and b.text.startswith("Under this policy"))
    saved = sum(d.saving_per_call * d.calls for d in decisions)
    calls = sum(d.calls for d in decisions)
    assert f"{money(saved / calls * 1000)} less per 1,000 calls" in headline
    assert f"{money(saved / 2.0)} per day, {money(saved / 2.0 * 30)} per 30-day month" in headline
    assert "observed rate of 1,050 calls a day" in headline  # 2,100 calls in two days
    window = next(b.text for b in blocks if isinstance(b, Para) and b.text.startswith("Data window"))
    assert "(2.0 days)" in window


def test_each_decision_states_its_actual_reason_and_what_would_change_it(tuned: tuple) -> None:
    dataset, decisions, blocks = tuned
    classify = _table(blocks, "decision", "Task `classify`")
    routing = _row(classify, "routing")
    assert routing["value"] == f"{SONNET} -> {HAIKU}"
    assert routing["reason"].startswith(f"{HAIKU} costs") and "anytime-valid" in routing["reason"]
    assert "sends the task back" in routing["what would change it"]

    triage = _decision(decisions, "triage")
    assert triage.route.model == SONNET and triage.route.evaluate_model == HAIKU
    gap = triage.route.gaps[HAIKU]
    assert gap.scores[0] == 11 and gap.pairs == 0
    row = _row(_table(blocks, "decision", "Task `triage`"), "routing")
    # Missing evidence, not "already the cheapest": Haiku costs less and is simply not proven.
    assert "already the cheapest" not in row["reason"]
    assert row["reason"].startswith(f"insufficient evidence for {HAIKU}, which would cost less")
    change = row["what would change it"]
    assert "feedback scores only (11 against" in change and "30 are the least a model is judged on" in change
    calls_per_day = triage.calls / dataset.days
    share = triage.route.evaluate_share
    assert share is not None
    days = 30 / (share * calls_per_day)
    assert days < 1 and change.endswith(f"at {share:.0%} of about 300 calls a day, about {days * 24:.1f} hours")

    models = _table(blocks, "model", "Task `triage`")
    haiku = _row(models, HAIKU)
    assert haiku["status"] == "gathering evidence"
    shown = haiku["quality gap to the serving model"]
    assert shown == f"[{gap.low:+.3f}, {gap.high:+.3f}], estimate {gap.estimate:+.3f}"
    # What the decision used: anytime-valid bounds on the gap, inside [-1, 1].
    for table in (b for b in blocks if isinstance(b, Table) and "quality gap to the serving model" in b.headers):
        for cell in (dict(zip(table.headers, r, strict=True))["quality gap to the serving model"] for r in table.rows):
            for bound in re.findall(r"[+-]\d\.\d{3}", cell):
                assert -1.0 <= float(bound) <= 1.0


def test_what_each_technique_is_worth_comes_from_this_traffic(tuned: tuple) -> None:
    dataset, decisions, blocks = tuned
    classify = _decision(decisions, "classify")
    section = "What each technique is worth here"
    caching = _row(_table(blocks, "task", section), "classify")
    estimate = classify.costs[HAIKU]
    assert caching["saved per 1k calls"] == money((estimate.uncached_per_call - estimate.per_call) * 1000)
    assert caching["time to first token"] == "200 ms with a cache read vs 800 ms without (300 / 300 streamed calls)"

    cheaper = next(b for b in blocks if isinstance(b, Table) and "cheapest candidate" in b.headers)
    row = _row(cheaper, "classify")
    assert row["cheapest candidate"] == HAIKU and row["status"].startswith("taken by this policy")
    worth = (classify.costs[SONNET].per_call - estimate.per_call) * classify.calls / dataset.days
    assert row["worth per day"] == money(worth)

    streaming = next(b for b in blocks if isinstance(b, Table) and "would feel faster streamed" in b.headers)
    row = _row(streaming, "classify")
    # Streamed first tokens: half at 0.2 s, half at 0.8 s (median 0.5 s); non-streamed answers take 3 s.
    assert row["TTFT p50 (streamed)"] == "500 ms" and row["duration p50 (not streamed)"] == "3.00 s"
    assert row["would feel faster streamed"] == "yes: the first token comes 6x sooner than the whole answer"
    assert _row(streaming, "draft")["would feel faster streamed"] == "cannot say"
    assert _row(streaming, "triage")["would feel faster streamed"] == "already streamed"

    unknown = _table(blocks, "task", "Where the data cannot say")
    said = {(r[0], r[1].split(":")[0]) for r in unknown.rows}
    assert ("draft", "what streaming would change") in said
    assert ("triage", f"whether {HAIKU} is good enough (its decision says what evidence is missing)") in said
    assert ("classify", "what streaming would change") not in said


def test_both_renderings_hold_the_same_text_and_tables(tuned: tuple) -> None:
    _dataset, _decisions, blocks = tuned
    markdown, html = render_markdown(blocks), render_html(blocks)
    for block in blocks:
        if isinstance(block, Table):
            for row in block.rows:
                assert "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" in markdown
                for cell in row:
                    assert escape(cell).replace("`", "") in html.replace("<code>", "").replace("</code>", "")
        elif isinstance(block, Para):
            assert block.text in markdown
        elif isinstance(block, Chart):
            assert f"_Chart: {block.title} (in the HTML report)._" in markdown
    options = _table(blocks, "option")
    assert options.rows and not any(re.search(r"[\[\]']|None|True|False", value) for _, value in options.rows)


def test_ids_in_the_html_page_are_unique_and_every_reference_resolves(tuned: tuple) -> None:
    """Every chart is an inline SVG of the one page; matplotlib numbers its ids from 1 in each figure."""
    _dataset, _decisions, blocks = tuned
    html = render_html(blocks)
    assert sum(isinstance(b, Chart) for b in blocks) >= 3
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert ids and len(ids) == len(set(ids))
    references = set(re.findall(r'(?:href="#|url\(#)([^")]+)', html))
    assert references and references <= set(ids)


def test_a_window_without_length_has_no_daily_figures(tmp_path: Path) -> None:
    spans = [syn.call(start_ns=T0, model=SONNET, task="one", output_tokens=40, response_id="x")]
    path = syn.write_otlp(tmp_path / "one.jsonl", spans)
    out = tmp_path / "r.md"
    assert otel_claude(["tune", str(path), "-o", str(tmp_path / "p.yaml"), "--report", str(out),
                        "--no-progress"]) == 0
    text = out.read_text()
    assert "the window has no length, so no rate per day" in text
    assert "| one | 1 |" in text and text.count("| - | - |") >= 1


def test_charts_are_drawn_for_the_costliest_tasks_only(tmp_path: Path) -> None:
    from tuner._report import CHARTED_TASKS

    spans = [syn.call(start_ns=T0 + (task * 40 + i) * 10**9, model=SONNET, task=f"t{task:02d}",
                      output_tokens=20 + i, input_tokens=500 + 100 * task, response_id=f"r{task}-{i}")
             for task in range(CHARTED_TASKS + 5) for i in range(40)]
    dataset, _issues = load_dataset([str(syn.write_otlp(tmp_path / "many.jsonl", spans))])
    options = TuneOptions()
    decisions = decide_all(dataset, options)
    blocks = build_blocks(build_policy(dataset, decisions, options), dataset, decisions, Issues(), options)
    lengths = [b.title.split(" on ")[0] for b in blocks if isinstance(b, Chart) and "output length" in b.title]
    # Tasks with larger inputs cost more: the 20 costliest are t05..t24.
    assert sorted(lengths) == [f"t{n:02d}" for n in range(5, CHARTED_TASKS + 5)]
    cost = next(b for b in blocks if isinstance(b, Chart) and b.title.startswith("Cost per 1,000 calls"))
    assert len(re.findall(r'<g id="[\w-]*-ytick_\d+"', cost.svg)) == CHARTED_TASKS
    assert any(isinstance(b, Para) and b.text.startswith(f"Charts are drawn for the {CHARTED_TASKS} tasks")
               for b in blocks)
    assert len(_table(blocks, "task", "Decisions").rows) == CHARTED_TASKS + 5  # every task has its row
