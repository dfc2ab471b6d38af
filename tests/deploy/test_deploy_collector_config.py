"""Static checks of collector-config.yaml: no Collector binary runs here, so check what it would reject or warn on."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from _stack_files import COLLECTOR_CONFIG, contract_labels, load_components, load_yaml

SECTIONS = {"receivers": "receiver", "processors": "processor", "exporters": "exporter", "connectors": "connector"}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return load_yaml(COLLECTOR_CONFIG)


def component_type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def test_otlp_receiver_listens_on_all_interfaces_on_standard_ports(config: dict[str, Any]) -> None:
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"


def test_every_pipeline_component_is_defined_and_every_definition_used(config: dict[str, Any]) -> None:
    pipelines = config["service"]["pipelines"]
    used: dict[str, set[str]] = {section: set() for section in SECTIONS}
    for name, pipeline in pipelines.items():
        for role in ("receivers", "processors", "exporters"):
            for component_id in pipeline.get(role, []):
                # A connector appears as an exporter in one pipeline and a receiver in another.
                section = "connectors" if component_id in config.get("connectors", {}) else role
                assert component_id in config.get(section, {}), f"pipeline {name!r}: {role} {component_id!r} undefined"
                used[section].add(component_id)
    for section in SECTIONS:
        unused = set(config.get(section, {})) - used[section]
        assert not unused, f"{section} defined but in no pipeline: {sorted(unused)}"
    assert set(config["service"]["extensions"]) == set(config["extensions"])


def test_component_types_are_current_otelcol_contrib_names(config: dict[str, Any]) -> None:
    known = load_components()
    sections = {**SECTIONS, "extensions": "extension"}
    for section, kind in sections.items():
        for component_id in config.get(section, {}):
            entry = known.get((kind, component_type(component_id)))
            assert entry is not None, f"{section}.{component_id}: unknown {kind} type"
            assert not entry.replaced_by, f"{section}.{component_id}: deprecated name, use {entry.replaced_by}"


def test_components_handle_the_signal_of_their_pipeline(config: dict[str, Any]) -> None:
    known = load_components()
    for name, pipeline in config["service"]["pipelines"].items():
        signal = name.split("/", 1)[0]
        for role, kind in (("receivers", "receiver"), ("processors", "processor"), ("exporters", "exporter")):
            for component_id in pipeline.get(role, []):
                if component_id in config.get("connectors", {}):
                    flows = known[("connector", component_type(component_id))].signals.split()
                    side = 0 if role == "exporters" else 1
                    assert any(flow.split(">")[side] == signal for flow in flows), (
                        f"pipeline {name!r}: connector {component_id!r} cannot be a {role[:-1]} of {signal}"
                    )
                else:
                    signals = known[(kind, component_type(component_id))].signals.split()
                    assert signal in signals, f"pipeline {name!r}: {component_id!r} does not handle {signal}"


def test_connectors_link_two_pipelines(config: dict[str, Any]) -> None:
    pipelines = config["service"]["pipelines"].values()
    for connector in config.get("connectors", {}):
        assert any(connector in p.get("exporters", []) for p in pipelines), f"{connector} never fed"
        assert any(connector in p.get("receivers", []) for p in pipelines), f"{connector} never read"


def test_span_file_for_the_tuner_is_rotated_otlp_json(config: dict[str, Any]) -> None:
    files = {cid: cfg for cid, cfg in config["exporters"].items() if component_type(cid) == "file"}
    assert files, "no file exporter for the tuner"
    for component_id, settings in files.items():
        assert settings.get("format", "json") == "json", component_id
        assert "compression" not in settings, f"{component_id}: compressed files are length-prefixed, not lines"
        assert not settings.get("append"), f"{component_id}: the Collector rejects append with rotation"
        assert settings["rotation"]["max_megabytes"] > 0
        assert settings["path"].startswith("/"), component_id
    traces_exporters = config["service"]["pipelines"]["traces"]["exporters"]
    assert set(files) <= set(traces_exporters)


def test_span_metrics_dimensions_are_contract_attributes(config: dict[str, Any]) -> None:
    dimensions = [d["name"] for d in config["connectors"]["span_metrics"]["dimensions"]]
    assert "gen_ai.request.model" in dimensions
    assert "otel_claude.task" in dimensions
    unknown = {d for d in dimensions if d.replace(".", "_") not in contract_labels()}
    assert not unknown, f"span_metrics dimensions not in docs/telemetry.md: {unknown}"


def test_commented_clickhouse_exporter_parses_when_uncommented() -> None:
    text = COLLECTOR_CONFIG.read_text(encoding="utf-8")
    block = re.search(r"# --- clickhouse begin ---\n(.*?)\n\s*# --- clickhouse end ---", text, re.DOTALL)
    assert block is not None, "ClickHouse block markers missing"
    lines = [re.sub(r"^(\s*)# ?", r"\1", line) for line in block.group(1).splitlines()]
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    exporter = yaml.safe_load("\n".join(line[indent:] for line in lines))
    settings = exporter["clickhouse"]
    # The tuner's ClickHouse reader queries this table name.
    assert settings["traces_table_name"] == "otel_traces"
    assert settings["endpoint"].startswith(("tcp://", "http://", "https://", "clickhouse://"))
    assert ("exporter", "clickhouse") in load_components()
