"""Prometheus metrics, declared in one place against an injected registry.

Stream counters are updated by :class:`WorkerMetrics` (the stream's observer). Per-machine KPIs are
read from the worker's live machine states at scrape time by :class:`MachineCollector`, so labels
come only from configured machines (a bounded set) and the hot path pays nothing per event.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from models.plant import LossCategory, PlantConfig
from models.timemodel import WindowAccumulator
from streams.contract import MACHINE_STATES
from streams.decode import REJECTION_CODES, Rejection
from streams.live import LiveMachines
from streams.processing import Outcome

__all__ = ["MachineCollector", "WorkerMetrics", "build_registry"]

_MACHINE_LABELS = ("tenant", "site", "line", "machine")
_WINDOW_LABELS = (*_MACHINE_LABELS, "window")
_RATIOS = ("oee", "availability", "performance", "quality", "coverage")


class WorkerMetrics:
    """Counters about the stream itself; implements :class:`streams.app.StreamObserver`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "linepulse_messages",
            "Telemetry messages processed, by result.",
            ["result"],
            registry=registry,
        )
        self.readings = Counter("linepulse_readings", "Telemetry readings applied.", registry=registry)
        self.dead_letters = Counter(
            "linepulse_dead_letters",
            "Messages sent to the dead-letter topic, by reason code.",
            ["code"],
            registry=registry,
        )
        self.kpi_records = Counter("linepulse_kpi_records", "KPI records published.", registry=registry)
        self.alert_records = Counter(
            "linepulse_alert_records", "Alert records published, by status.", ["status"], registry=registry
        )
        self.rebalances = Counter("linepulse_rebalances", "Partition rebalances seen.", registry=registry)
        self.ready = Gauge(
            "linepulse_ready", "1 when partitions are assigned and state recovered.", registry=registry
        )
        for code in REJECTION_CODES:
            self.dead_letters.labels(code=code)
        # Children bound once: labels() costs more than inc() (~1.5 us a message, measured).
        self._by_result = {
            result: self.messages.labels(result=result)
            for result in ("applied", "duplicate", "late", "dead_letter")
        }

    def on_outcome(self, outcome: Outcome) -> None:
        if isinstance(outcome, Rejection):
            self._by_result["dead_letter"].inc()
            self.dead_letters.labels(code=outcome.code).inc()
            return
        if outcome.duplicate:
            self._by_result["duplicate"].inc()
            return
        self._by_result["late" if outcome.late else "applied"].inc()
        self.readings.inc(outcome.readings)
        if outcome.kpis:
            self.kpi_records.inc(len(outcome.kpis))
        for alert in outcome.alerts:
            self.alert_records.labels(status=alert.status).inc()

    def on_rebalance(self) -> None:
        self.rebalances.inc()


class MachineCollector(Collector):
    """Per-machine KPIs of the open hour, shift and day windows, read at scrape time.

    Labels come from the plant file (machines, states, loss categories) or from reason codes the
    machine reported, so series are bounded by what the plant configured and uses.
    """

    def __init__(self, live: LiveMachines, plant: PlantConfig) -> None:
        self.live = live
        self.plant = plant

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        ratios = {
            name: GaugeMetricFamily(
                f"linepulse_{name}_ratio",
                f"{name.capitalize()} of the machine's current window (0..1), ISO 22400-2.",
                labels=_WINDOW_LABELS,
            )
            for name in _RATIOS
        }
        seconds = GaugeMetricFamily(
            "linepulse_window_seconds",
            "Seconds of the current window by time-model bucket; 'ideal' is ideal production time.",
            labels=(*_WINDOW_LABELS, "category"),
        )
        units = GaugeMetricFamily(
            "linepulse_window_units",
            "Units produced in the current window, good or scrap.",
            labels=(*_WINDOW_LABELS, "quality"),
        )
        scrap_reasons = GaugeMetricFamily(
            "linepulse_window_scrap_units",
            "Scrap units in the current window by scrap reason.",
            labels=(*_WINDOW_LABELS, "reason"),
        )
        losses = GaugeMetricFamily(
            "linepulse_loss_seconds",
            "Seconds lost in the current window by loss category, state and reason code.",
            labels=(*_WINDOW_LABELS, "category", "state", "reason"),
        )
        good = CounterMetricFamily(
            "linepulse_good_units", "Good units since first seen.", labels=_MACHINE_LABELS
        )
        scrap = CounterMetricFamily(
            "linepulse_scrap_units", "Scrap units since first seen.", labels=_MACHINE_LABELS
        )
        run = CounterMetricFamily(
            "linepulse_run_seconds", "Actual production seconds since first seen.", labels=_MACHINE_LABELS
        )
        state_info = GaugeMetricFamily(
            "linepulse_machine_state",
            "1 for the machine's current state, 0 for the others.",
            labels=(*_MACHINE_LABELS, "state"),
        )
        alerts = GaugeMetricFamily(
            "linepulse_active_alerts",
            "Open alerts by kind and severity.",
            labels=(*_MACHINE_LABELS, "kind", "severity"),
        )
        event_time = GaugeMetricFamily(
            "linepulse_event_time_seconds",
            "Newest event time seen for the machine (Unix seconds).",
            labels=_MACHINE_LABELS,
        )
        target = GaugeMetricFamily(
            "linepulse_oee_target_ratio", "The plant's OEE alert threshold (alerts.oee_below)."
        )
        if self.plant.alerts.oee_below is not None:
            target.add_metric([], self.plant.alerts.oee_below)
        for state in self.live:
            machine = [state.tenant, state.site, state.line, state.machine]
            for kind, window in state.windows.items():
                self._window(window, [*machine, kind], ratios, seconds, units, scrap_reasons, losses)
            good.add_metric(machine, state.totals.good)
            scrap.add_metric(machine, state.totals.scrap)
            run.add_metric(machine, state.totals.run_ms / 1000.0)
            for name in MACHINE_STATES:
                state_info.add_metric([*machine, name], 1.0 if state.state == name else 0.0)
            open_alerts = Tally((alert.kind, alert.severity) for alert in state.alerts.values())
            for (kind, severity), count in sorted(open_alerts.items()):
                alerts.add_metric([*machine, kind, severity], float(count))
            if state.last_seen_ms is not None:
                event_time.add_metric(machine, state.last_seen_ms / 1000.0)
        yield from ratios.values()
        yield from (
            seconds,
            units,
            scrap_reasons,
            losses,
            good,
            scrap,
            run,
            state_info,
            alerts,
            event_time,
            target,
        )

    def _window(
        self,
        window: WindowAccumulator,
        labels: list[str],
        ratios: dict[str, GaugeMetricFamily],
        seconds: GaugeMetricFamily,
        units: GaugeMetricFamily,
        scrap_reasons: GaugeMetricFamily,
        losses: GaugeMetricFamily,
    ) -> None:
        figures = window.figures()
        for name in _RATIOS:
            value = getattr(figures, name)
            if value is not None:
                ratios[name].add_metric(labels, value)
        for category, value in (
            ("planned_busy", figures.planned_s),
            ("run", figures.run_s),
            ("ideal", figures.ideal_s),
            ("availability_loss", figures.availability_loss_s),
            ("performance_loss", figures.performance_loss_s),
            ("unknown", figures.unknown_s),
            ("planned_stop", figures.planned_stop_s),
            ("unscheduled", figures.unscheduled_s),
        ):
            if value is not None:
                seconds.add_metric([*labels, category], value)
        units.add_metric([*labels, "good"], figures.good)
        units.add_metric([*labels, "scrap"], figures.scrap)
        for reason, count in window.scrap_by_reason.items():
            scrap_reasons.add_metric([*labels, reason], count)
        for loss_key, value in figures.losses_s.items():
            state_name, _, reason = loss_key.partition("/")
            category = (
                LossCategory.UNKNOWN
                if state_name == "no_data"
                else self.plant.classify(state_name, None if reason == "-" else reason)
            )
            losses.add_metric([*labels, category.value, state_name, reason], value)


def build_registry(live: LiveMachines, plant: PlantConfig) -> tuple[CollectorRegistry, WorkerMetrics]:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    registry.register(MachineCollector(live, plant))
    return registry, metrics
