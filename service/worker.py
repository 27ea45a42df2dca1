"""``linepulse worker``: the Faust worker with its topics, metrics and pages, against a Kafka cluster."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from models.plant import PlantConfig
from service.anomaly_models import RegistryModels, anomaly_models
from service.faust_worker import quiet_worker
from service.metrics import register_collectors
from service.settings import Settings
from service.warmup import warm_up_or_log
from service.web import register_routes
from service.web.port_check import ensure_port_free
from service.worker_metrics import WorkerMetrics
from streams.app import LinepulseStream, create_stream
from streams.stop_deadline import StopDeadline
from streams.topics import ensure_topics, topic_specs

__all__ = ["WorkerParts", "build_worker", "run_worker"]


@dataclass(frozen=True, slots=True)
class WorkerParts:
    stream: LinepulseStream
    registry: CollectorRegistry
    metrics: WorkerMetrics
    anomaly_models: RegistryModels | None


def build_worker(settings: Settings, plant: PlantConfig, bootstrap_servers: str) -> WorkerParts:
    """Create the topics if missing, then a Faust app sized to the telemetry topic's partitions."""
    models = anomaly_models(settings)  # a bad registry setting fails before the broker is touched
    # With the app id: its table changelogs must have telemetry's count too, or Faust would start
    # and then fail on the first message ("Unrecognized partition") after a partition increase.
    specs = topic_specs(
        settings.topics, settings.partitions, settings.replication_factor, app_id=settings.app_id
    )
    counts = ensure_topics(bootstrap_servers, specs)
    partitions = counts[settings.topic_telemetry]
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    stream = create_stream(settings.stream_config(bootstrap_servers, partitions), plant, metrics, models)
    metrics.expect_topics(written=stream.written, sources=stream.sources)
    register_collectors(registry, stream.live, plant, stream.lines)
    metrics.ready.set_function(lambda: 1.0 if stream.is_ready() else 0.0)
    register_routes(stream, registry)
    return WorkerParts(stream, registry, metrics, models)


def run_worker(settings: Settings, plant: PlantConfig, bootstrap_servers: str) -> int:
    """Run until SIGINT/SIGTERM; Faust commits offsets and flushes producers on the way out, and a
    stop taking longer than ``stop_timeout_s`` exits with status 70 (:mod:`streams.stop_deadline`)."""
    ensure_port_free(settings.web_host, settings.web_port)
    parts = build_worker(settings, plant, bootstrap_servers)
    # Before Faust starts: compiling inside its event loop would hold up its pages and its stop.
    warm_up_or_log(
        plant,
        max_payload_bytes=settings.max_payload_bytes,
        max_future_ms=int(settings.max_future_s * 1000),
        anomaly_models=parts.anomaly_models,
    )
    deadline = StopDeadline(settings.stop_timeout_s, after="the stop began", level=logging.INFO)
    worker = quiet_worker(parts.stream.app, settings.log_level, deadline, settings.log_repeat_window_s)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", dest="plant_config", metavar="PLANT.yaml", help="plant configuration file"
    )
    parser.add_argument("--bootstrap-servers", help="Kafka bootstrap servers, comma separated")
    parser.add_argument(
        "--web-port",
        type=int,
        help="web port for /metrics, /status, /api/machines, /health, /ready (worker: 0 for any free port)",
    )
    parser.add_argument("--partitions", type=int, help="partitions of the topics linepulse creates")
    parser.add_argument("--app-id", help="Faust app id (consumer group)")
    parser.add_argument(
        "--model-registry", type=Path, metavar="DIR", help="anomaly model registry (hot-reloaded)"
    )
