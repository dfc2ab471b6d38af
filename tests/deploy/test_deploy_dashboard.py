"""Static checks of the Grafana dashboard: structure, coverage of what it must show, and that every query names
only metrics and labels from docs/telemetry.md (the live test checks they return data)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from _stack_files import (
    contract_labels,
    contract_metrics,
    dashboard_queries,
    labels_in,
    load_dashboard,
    metrics_in,
    render,
)


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_panel_ids_are_unique_and_the_grid_has_no_overlaps(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_every_panel_queries_through_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels(dashboard):
        assert panel["targets"], f"{panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_queries_use_only_contract_metrics_and_labels(dashboard: dict[str, Any]) -> None:
    metrics = contract_metrics()
    labels = contract_labels() | {"le"}
    for query in dashboard_queries(dashboard):
        used = metrics_in(query.expr)
        assert used, f"{query.panel}: no metric in {query.expr}"
        assert used <= set(metrics), f"{query.panel}: {used - set(metrics)} not in docs/telemetry.md"
        assert labels_in(query.expr) <= labels, f"{query.panel}: labels {labels_in(query.expr) - labels} unknown"


# What the issue asks the dashboard to show: a metric and the label it must be broken down by ("" for totals).
REQUIRED = {
    "calls by model": ("otel_claude_calls_total", "gen_ai_request_model"),
    "calls by task": ("otel_claude_calls_total", "otel_claude_task"),
    "cost by model": ("otel_claude_cost_USD_total", "gen_ai_request_model"),
    "cost by task": ("otel_claude_cost_USD_total", "otel_claude_task"),
    "tokens by model": ("gen_ai_client_token_usage_sum", "gen_ai_request_model"),
    "tokens by task": ("gen_ai_client_token_usage_sum", "otel_claude_task"),
    "duration percentiles": ("gen_ai_client_operation_duration_seconds_bucket", "le"),
    "TTFT percentiles": ("gen_ai_client_operation_time_to_first_chunk_seconds_bucket", "le"),
    "cache hit ratio": ("otel_claude_cache_tokens_total", "otel_claude_cache_kind"),
    "truncation rate": ("otel_claude_calls_total", "gen_ai_response_finish_reason"),
    "error rate by type": ("otel_claude_calls_total", "error_type"),
    "policy version": ("otel_claude_calls_total", "otel_claude_policy_version"),
    "cost per call by task": ("otel_claude_cost_USD_total", "otel_claude_task"),
    "feedback quality by task and model": ("otel_claude_feedback_score_sum_total", "gen_ai_request_model"),
    "verdicts by candidate": ("otel_claude_evaluation_verdicts_total", "otel_claude_evaluation_candidate_model"),
    "rate-limit headroom": ("otel_claude_ratelimit_remaining", "otel_claude_limit_kind"),
    "429 rate": ("otel_claude_calls_total", "error_type"),
    "TTFT by task": ("gen_ai_client_operation_time_to_first_chunk_seconds_bucket", "otel_claude_task"),
    "evaluation spend by task": ("otel_claude_evaluation_cost_USD_total", "otel_claude_task"),
    "predicted cost per call": ("otel_claude_policy_predicted_cost_per_call_USD", "otel_claude_policy_prediction"),
}


@pytest.mark.parametrize("topic", sorted(REQUIRED))
def test_dashboard_covers(dashboard: dict[str, Any], topic: str) -> None:
    metric, label = REQUIRED[topic]
    assert any(metric in metrics_in(q.expr) and label in labels_in(q.expr) for q in dashboard_queries(dashboard)), (
        f"no panel shows {topic} ({metric} by {label})"
    )


def test_percentile_panels_show_p50_p95_p99(dashboard: dict[str, Any]) -> None:
    for metric in REQUIRED["duration percentiles"][0], REQUIRED["TTFT percentiles"][0]:
        exprs = [q.expr for q in dashboard_queries(dashboard) if metric in q.expr]
        for quantile in ("0.5", "0.95", "0.99"):
            assert any(f"histogram_quantile({quantile}," in e for e in exprs), f"{metric}: no p{quantile}"


def test_model_and_task_variables_read_existing_labels(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    for name, label in (("model", "gen_ai_request_model"), ("task", "otel_claude_task")):
        variable = variables[name]
        assert variable["query"]["query"] == f"label_values(otel_claude_calls_total, {label})"
        # "All" must also match calls without a task label, which a regex of the listed values would not.
        assert variable["includeAll"] and variable["allValue"] == ".*"
    # Every selector of a metric that has the label filters by the variable (the API's rate-limit readings have
    # no task; the policy's predictions no model).
    for query in dashboard_queries(dashboard):
        for metric, matchers in SELECTOR.findall(query.expr):
            if metric not in WITHOUT_MODEL:
                assert 'gen_ai_request_model=~"$model"' in matchers, (query.panel, metric)
            if metric not in WITHOUT_TASK:
                assert 'otel_claude_task=~"$task"' in matchers, (query.panel, metric)


SELECTOR = re.compile(r"\b([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}")
WITHOUT_MODEL = {"otel_claude_policy_predicted_cost_per_call_USD", "otel_claude_policy_loaded_seconds"}
WITHOUT_TASK = {"otel_claude_ratelimit_remaining", "otel_claude_ratelimit_limit", "otel_claude_policy_loaded_seconds"}


def test_cache_hit_ratio_is_over_all_input_tokens(dashboard: dict[str, Any]) -> None:
    for query in dashboard_queries(dashboard):
        if query.panel.startswith("Cache hit ratio"):
            numerator, denominator = query.expr.split(" / ")
            assert 'otel_claude_cache_kind="read"' in numerator
            assert 'otel_claude_cache_kind=~"read|write|uncached"' in denominator, query.panel


def test_policy_changes_are_annotations(dashboard: dict[str, Any]) -> None:
    (annotation,) = dashboard["annotations"]["list"]
    assert annotation["datasource"]["uid"] == "${datasource}" and annotation["enable"]
    assert metrics_in(annotation["expr"]) == {"otel_claude_policy_loaded_seconds"}
    assert annotation["useValueForTime"] and annotation["expr"].endswith("* 1000")  # Grafana reads milliseconds
    assert "{{otel_claude_policy_version}}" in annotation["titleFormat"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (deploy/ci/prometheus.sh install)")
def test_promtool_parses_every_query(dashboard: dict[str, Any], tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:panel_{i}", "expr": render(q.expr, "5m")}
        for i, q in enumerate(dashboard_queries(dashboard))
    ]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout
