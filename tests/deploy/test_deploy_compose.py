"""Static checks of deploy/compose.yaml and what it mounts: no Docker engine runs here, so check that the files,
ports and host names the containers rely on agree with each other."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from _stack_files import (
    COLLECTOR_CONFIG,
    COMPOSE,
    DASHBOARD,
    GRAFANA_PROVISIONING,
    PROMETHEUS_CONFIG,
    REPO,
    load_yaml,
)


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return load_yaml(COMPOSE)["services"]


@pytest.fixture(scope="module")
def collector() -> dict[str, Any]:
    return load_yaml(COLLECTOR_CONFIG)


class Mount:
    def __init__(self, spec: str) -> None:
        parts = spec.split(":")
        self.source = (COMPOSE.parent / parts[0]).resolve()
        self.target = PurePosixPath(parts[1])
        self.read_only = len(parts) > 2 and "ro" in parts[2].split(",")

    def host_path(self, container_path: str) -> Path | None:
        """The host file behind `container_path`, when this mount covers it."""
        path = PurePosixPath(container_path)
        if path == self.target:
            return self.source
        if self.target in path.parents:
            return self.source / path.relative_to(self.target)
        return None


def mounts(service: dict[str, Any]) -> list[Mount]:
    return [Mount(spec) for spec in service.get("volumes", [])]


def host_file(service: dict[str, Any], container_path: str) -> Path:
    for mount in mounts(service):
        found = mount.host_path(container_path)
        if found is not None:
            return found
    raise AssertionError(f"{container_path} is not mounted into the container")


def published(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port"""
    pairs = [str(spec).split("#")[0].strip().split(":") for spec in service.get("ports", [])]
    return {int(container): int(host) for host, container in pairs}


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def test_the_stack_has_collector_jaeger_prometheus_grafana(services: dict[str, Any]) -> None:
    images = {name: service["image"].split(":")[0] for name, service in services.items()}
    assert images == {
        "otel-collector": "otel/opentelemetry-collector-contrib",
        "jaeger": "jaegertracing/jaeger",
        "prometheus": "prom/prometheus",
        "grafana": "grafana/grafana",
    }


def test_images_are_pinned_to_versions(services: dict[str, Any]) -> None:
    for name, service in services.items():
        image, _, tag = service["image"].partition(":")
        assert tag and tag != "latest" and any(ch.isdigit() for ch in tag), f"{name}: image {image} is not pinned"
    assert services["jaeger"]["image"].split(":")[1].startswith("2."), "Jaeger v2 ingests OTLP; v1 is end of life"


def test_read_only_mounts_exist_and_writable_ones_stay_in_ignored_out(services: dict[str, Any]) -> None:
    ignored = (REPO / ".gitignore").read_text(encoding="utf-8").split()
    for name, service in services.items():
        for mount in mounts(service):
            if mount.read_only:
                assert mount.source.exists(), f"{name}: mounted {mount.source} does not exist"
            else:
                relative = mount.source.relative_to(REPO)
                assert f"/{relative.parts[0]}/" in ignored, f"{name}: writable mount {relative} is not git-ignored"


def test_collector_gets_its_config_and_a_directory_for_span_files(
    services: dict[str, Any], collector: dict[str, Any]
) -> None:
    service = services["otel-collector"]
    config_arg = next(arg for arg in service["command"] if arg.startswith("--config="))
    assert host_file(service, config_arg.split("=", 1)[1]) == COLLECTOR_CONFIG
    for component_id, settings in collector["exporters"].items():
        if component_id.split("/")[0] == "file":
            directory = str(PurePosixPath(settings["path"]).parent)
            writable = [m for m in mounts(service) if not m.read_only and m.host_path(directory) is not None]
            assert writable, f"{component_id} writes to {directory}, which is not a writable mount"


def test_collector_publishes_its_receiver_and_exporter_ports(
    services: dict[str, Any], collector: dict[str, Any]
) -> None:
    ports = published(services["otel-collector"])
    protocols = collector["receivers"]["otlp"]["protocols"]
    for protocol in ("grpc", "http"):
        port = port_of(protocols[protocol]["endpoint"])
        assert ports.get(port) == port, f"OTLP {protocol} port {port} not published as itself"
    assert port_of(collector["exporters"]["prometheus"]["endpoint"]) in ports
    assert port_of(collector["extensions"]["health_check"]["endpoint"]) in ports


def test_no_two_services_publish_the_same_host_port(services: dict[str, Any]) -> None:
    host_ports = [port for service in services.values() for port in published(service).values()]
    assert len(host_ports) == len(set(host_ports))


def test_collector_sends_traces_to_the_jaeger_service(services: dict[str, Any], collector: dict[str, Any]) -> None:
    endpoint = collector["exporters"]["otlp_grpc/jaeger"]["endpoint"]
    host, port = endpoint.rsplit(":", 1)
    assert host == "jaeger" and host in services
    assert port == "4317", "Jaeger v2 receives OTLP gRPC on 4317"
    assert "jaeger" in services["otel-collector"].get("depends_on", [])


def test_prometheus_scrapes_the_collector_exporter(services: dict[str, Any], collector: dict[str, Any]) -> None:
    service = services["prometheus"]
    config_arg = next(arg for arg in service["command"] if arg.startswith("--config.file="))
    assert host_file(service, config_arg.split("=", 1)[1]) == PROMETHEUS_CONFIG
    targets = [
        t for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    ]
    expected = f"otel-collector:{port_of(collector['exporters']['prometheus']['endpoint'])}"
    assert expected in targets


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (deploy/ci/prometheus.sh install)")
def test_promtool_accepts_the_prometheus_config() -> None:
    result = subprocess.run(
        ["promtool", "check", "config", str(PROMETHEUS_CONFIG)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_datasources_point_at_the_stack_services(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    provisioning = host_file(grafana, "/etc/grafana/provisioning")
    assert provisioning == GRAFANA_PROVISIONING
    sources = {s["type"]: s for s in load_yaml(provisioning / "datasources" / "datasources.yaml")["datasources"]}
    assert sources["prometheus"]["url"] == f"http://prometheus:{9090}"
    assert 9090 in published(services["prometheus"])
    assert sources["jaeger"]["url"] == "http://jaeger:16686"
    assert 16686 in published(services["jaeger"])
    assert sum(bool(s.get("isDefault")) for s in sources.values()) == 1


def test_grafana_provisions_the_dashboard(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    providers = load_yaml(GRAFANA_PROVISIONING / "dashboards" / "dashboards.yaml")["providers"]
    loaded = {host_file(grafana, p["options"]["path"]) for p in providers}
    assert DASHBOARD.parent in loaded
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_file(grafana, home) == DASHBOARD
