"""Prometheus metrics of a worker, assembled against an injected registry.

Stream counters are updated as the stream goes by :class:`~service.worker_metrics.WorkerMetrics`;
machines and lines are read from the worker's live states at scrape time by
:class:`~service.machine_collector.MachineCollector` and :class:`~service.line_collector.LineCollector`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from models.plant import PlantConfig
from service.line_collector import LineCollector
from service.machine_collector import MachineCollector
from service.worker_metrics import WorkerMetrics
from streams.live import LiveLines, LiveMachines

__all__ = ["build_registry", "register_collectors"]


def build_registry(
    live: LiveMachines, plant: PlantConfig, lines: LiveLines | None = None
) -> tuple[CollectorRegistry, WorkerMetrics]:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    register_collectors(registry, live, plant, lines if lines is not None else LiveLines())
    return registry, metrics


def register_collectors(
    registry: CollectorRegistry, live: LiveMachines, plant: PlantConfig, lines: LiveLines
) -> None:
    """The scrape-time collectors of the machines and lines; the worker registers them once its stream
    (which holds ``live`` and ``lines``) exists, after the stream counters it was built with."""
    registry.register(MachineCollector(live, plant))
    registry.register(LineCollector(lines))
