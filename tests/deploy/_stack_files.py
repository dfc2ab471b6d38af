"""Loaders for the deploy stack's files and the dashboard's queries, shared by the static and the live tests."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any, NamedTuple

import yaml

REPO = Path(__file__).resolve().parents[2]
COLLECTOR_CONFIG = REPO / "collector-config.yaml"
COMPOSE = REPO / "deploy" / "compose.yaml"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "otel-claude.json"
PROMETHEUS_SCRIPT = REPO / "deploy" / "ci" / "prometheus.sh"
TELEMETRY_DOC = REPO / "docs" / "telemetry.md"
COMPONENTS = Path(__file__).parent / "data" / "otelcol_components.csv"


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


class Component(NamedTuple):
    kind: str
    type: str
    signals: str
    replaced_by: str


def load_components() -> dict[tuple[str, str], Component]:
    lines = [line for line in COMPONENTS.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    rows = [Component(**row) for row in csv.DictReader(lines)]
    return {(row.kind, row.type): row for row in rows}


class Query(NamedTuple):
    panel: str
    ref_id: str
    expr: str


def dashboard_queries(dashboard: dict[str, Any]) -> list[Query]:
    """Every PromQL target of every panel, rows' nested panels included."""
    queries = []
    stack = list(dashboard["panels"])
    while stack:
        panel = stack.pop(0)
        stack.extend(panel.get("panels", []))
        queries += [Query(panel["title"], t["refId"], t["expr"]) for t in panel.get("targets", [])]
    return queries


# What Grafana substitutes before a query reaches Prometheus, for "All" in every multi-value variable.
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def render(expr: str, window: str, all_value: str = ".*") -> str:
    """Substitute Grafana's variables as Grafana would, with `window` for both $__rate_interval and $__range."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in ("__rate_interval", "__range", "__interval"):
            return window
        return all_value

    return _VARIABLE.sub(replace, expr)


# The OpenTelemetry -> Prometheus name translation (Prometheus compatibility spec): dots become underscores, a
# unit in braces is dropped, known units become words, counters gain _total, histograms _bucket/_sum/_count.
_UNIT_WORDS = {"s": "seconds", "ms": "milliseconds", "By": "bytes"}


def prometheus_names(name: str, instrument: str, unit: str) -> set[str]:
    base = name.replace(".", "_")
    if unit and not unit.startswith("{"):
        base += "_" + _UNIT_WORDS.get(unit, unit)
    if instrument == "counter":
        return {base + "_total"}
    if instrument == "histogram":
        return {base + suffix for suffix in ("_bucket", "_sum", "_count")}
    return {base}


def contract_metrics() -> dict[str, str]:
    """Prometheus series name -> OpenTelemetry metric name, for every metric in docs/telemetry.md's table."""
    text = TELEMETRY_DOC.read_text(encoding="utf-8")
    section = text.split("## Metrics", 1)[1]
    names: dict[str, str] = {}
    for match in re.finditer(r"^\| `([\w.]+)` \| (\w+) \| ([^|]*?) \|", section, re.MULTILINE):
        name, instrument, unit = match.group(1), match.group(2), match.group(3).strip()
        for series in prometheus_names(name, instrument, unit):
            names[series] = name
    return names


def contract_labels() -> set[str]:
    """Every attribute name the telemetry contract mentions, as a Prometheus label."""
    text = TELEMETRY_DOC.read_text(encoding="utf-8")
    return {name.replace(".", "_") for name in re.findall(r"`([a-z_]+(?:\.[a-z_0-9]+)+)`", text)}


_METRIC_IN_EXPR = re.compile(r"\b([a-zA-Z_:][\w:]*)\s*\{")
_GROUPING = re.compile(r"\bby\s*\(([^)]*)\)")
_MATCHER_LABEL = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*\"")


def metrics_in(expr: str) -> set[str]:
    return set(_METRIC_IN_EXPR.findall(expr))


def labels_in(expr: str) -> set[str]:
    grouped = {label.strip() for group in _GROUPING.findall(expr) for label in group.split(",") if label.strip()}
    return grouped | set(_MATCHER_LABEL.findall(expr))
