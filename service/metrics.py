"""Prometheus metrics of a worker, assembled against an injected registry.

Stream counters are updated as the stream goes by :class:`~service.worker_metrics.WorkerMetrics`;
machines and lines are read from the worker's live states at scrape time by
:class:`~service.machine_collector.MachineCollector` and :class:`~service.line_collector.LineCollector`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry

from models.plant import PlantConfig
from service.line_collector import LineCollector
from service.machine_collector import MachineCollector
from service.worker_metrics import WorkerMetrics
from streams.live import LiveLines, LiveMachines
from streams.records import LineKpiRecord

__all__ = ["TenantCollectors", "build_registry", "register_collectors"]


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


class _OfTenant:
    """The line records of ``items`` of one tenant, read afresh each time."""

    def __init__(self, items: Iterable[Any], tenant: str) -> None:
        self._items = items
        self._tenant = tenant

    def __iter__(self) -> Iterator[Any]:
        return (item for item in self._items if item.tenant == self._tenant)


class TenantCollectors:
    """One tenant's machine and line series, nothing else (``/metrics?tenant=ID``): the worker's
    own series (messages, dead letters, sends) count every tenant's telemetry together."""

    def __init__(self, live: LiveMachines, plant: PlantConfig, lines: LiveLines, tenant: str) -> None:
        records: Iterable[LineKpiRecord] = _OfTenant(lines, tenant)
        self._collectors = (MachineCollector(live, plant, tenant=tenant), LineCollector(records))

    def collect(self) -> Iterator[Any]:
        for collector in self._collectors:
            yield from collector.collect()
