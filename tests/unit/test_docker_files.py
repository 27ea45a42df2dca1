"""docker/compose.yaml and docker/Dockerfile, checked as far as this machine can without a Docker engine.

They cannot be run here, so what they call is checked instead: every linepulse command in compose
parses with the real CLI, every LINEPULSE_* variable is a real setting with a valid value, every
mounted path exists, and Prometheus scrapes the worker where compose puts it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.cli import build_parser
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return document


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def test_compose_has_the_six_services_each_with_an_image() -> None:
    services = _services()
    assert set(services) == {"kafka", "worker", "simulator", "prometheus", "alertmanager", "grafana"}
    for name, service in services.items():
        assert isinstance(service.get("image"), str) and service["image"], f"{name} has no image"
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft


@pytest.mark.parametrize("name", ["worker", "simulator"])
def test_linepulse_services_build_the_image_and_run_a_valid_command(name: str) -> None:
    service = _services()[name]
    build = service["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    command = service["command"]
    assert isinstance(command, list) and command, f"{name} has no command"
    # The image's ENTRYPOINT is `linepulse`, so the command is its argv: the real parser must accept it.
    args = build_parser().parse_args(command)
    assert args.command == command[0]


def test_the_simulator_and_the_worker_use_the_kafka_service() -> None:
    services = _services()
    assert services["simulator"]["command"] == ["simulate", "--bootstrap-servers", "kafka:9092"]
    assert services["worker"]["environment"]["LINEPULSE_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert "PLAINTEXT://kafka:9092" in services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]


def test_worker_environment_is_valid_settings() -> None:
    environment = _services()["worker"]["environment"]
    fields: dict[str, Any] = {}
    for variable, value in environment.items():
        assert variable.startswith("LINEPULSE_"), variable
        name = variable.removeprefix("LINEPULSE_").lower()
        assert name in Settings.model_fields, f"{variable} is not a linepulse setting"
        fields[name] = value
    settings = Settings(**fields)  # raises if a value is invalid
    assert settings.web_host == "0.0.0.0"  # reachable by Prometheus from another container


def test_prometheus_scrapes_the_worker_and_mounts_exist() -> None:
    services = _services()
    port = str(services["worker"]["environment"]["LINEPULSE_WEB_PORT"])
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "linepulse" and job["metrics_path"] == "/metrics"
    assert job["scrape_interval"] == "15s"
    assert job["static_configs"][0]["targets"] == [f"worker:{port}"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name} mounts missing {source}"


def test_dockerfile_essentials() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert "pip install -c constraints.txt ." in text
    assert 'ENTRYPOINT ["linepulse"]' in text and 'CMD ["worker"]' in text
    # The kernel cache on the data volume (compose mounts one there): restarts load, not compile.
    assert "NUMBA_CACHE_DIR=/var/lib/linepulse/data/numba-cache" in text
    compose = COMPOSE.read_text(encoding="utf-8")
    assert "worker-data:/var/lib/linepulse/data" in compose
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    for copied in re.findall(r"^COPY (.+) \S+$", text, re.MULTILINE):
        for source in copied.split():
            assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


def test_prometheus_sends_alerts_to_the_alertmanager_service() -> None:
    services = _services()
    alertmanager = services["alertmanager"]
    # The official image at a pinned version, never a moving tag.
    assert re.fullmatch(r"prom/alertmanager:v\d+\.\d+\.\d+", alertmanager["image"]), alertmanager["image"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in alertmanager["command"]
    assert "./alertmanager:/etc/alertmanager:ro" in alertmanager["volumes"]
    assert (DOCKER / "alertmanager" / "alertmanager.yml").is_file()
    # Silences are the acknowledgements: they must survive a restart of the container.
    storage = next(arg for arg in alertmanager["command"] if arg.startswith("--storage.path="))
    data_volume = storage.removeprefix("--storage.path=")
    assert any(volume.endswith(f":{data_volume}") for volume in alertmanager["volumes"])
    assert "9093:9093" in alertmanager["ports"]
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    (target_group,) = config["alerting"]["alertmanagers"]
    assert target_group["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert "alertmanager" in services["prometheus"]["depends_on"]
