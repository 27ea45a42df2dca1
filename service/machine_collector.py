"""Per-machine KPIs, states, alerts, capability and sensor signals, read from live states at scrape time.

Labels come only from configured machines (a bounded set) and, for what telemetry names (reason
codes, products, characteristics, signals), from at most a fixed number per machine, so series stay
bounded whatever a gateway sends; the hot path pays nothing per event.
"""

from __future__ import annotations

import math
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from models import signal_stats
from models.alert_rules import AlertState
from models.calendar import PlantCalendar
from models.capability_history import newest_capability_by_shift
from models.machine_state import MachineState
from models.plant import PlantConfig
from models.subjects import series_name
from models.timemodel import WindowAccumulator, WindowFigures
from streams.contract import MACHINE_STATES
from streams.live import Counters, LiveMachines

__all__ = ["LABEL_VALUES", "MACHINE_LABELS", "OTHER", "RATIOS", "SIGNAL_SERIES", "MachineCollector"]

MACHINE_LABELS = ("tenant", "site", "line", "machine")
WINDOW_LABELS = (*MACHINE_LABELS, "window")
RATIOS = ("oee", "availability", "performance", "quality", "coverage")


# Label values that come from telemetry (reason codes, scrap reasons, products) are not bounded by
# the plant file: per machine and window the LABEL_VALUES largest get their own series, the rest are
# summed under OTHER, so a gateway sending free text cannot grow the series without bound.
LABEL_VALUES: Final = 20
OTHER: Final = "other"
# Sensor signal names come from telemetry too, but a machine's sensors are its own and not summable:
# the SIGNAL_SERIES most-read signals of a machine get series (a CNC cell has a few dozen), the rest
# none (they stay in /api/machines). Each costs four series in every scrape, which a worker renders
# on its event loop (~35 us a signal; docs/metrics.md, "What a scrape costs").
SIGNAL_SERIES: Final = 32


def _capped(items: Iterable[tuple[str, int | float]]) -> list[tuple[str, float]]:
    """``(label value, value)`` largest first: the first LABEL_VALUES as they are, the rest as OTHER."""
    ordered = sorted(items, key=lambda item: (-item[1], item[0]))
    capped = [(label, float(value)) for label, value in ordered[:LABEL_VALUES]]
    if len(ordered) > LABEL_VALUES:
        capped.append((OTHER, float(sum(value for _, value in ordered[LABEL_VALUES:]))))
    return capped


class _SignalFamilies:
    """A machine's sensor signals from the statistics its state keeps (:mod:`models.signal_stats`).

    Only signals the machine still sends: one without a reading for ``state_timeout_s`` (of the
    machine's event time) has no series, so a removed or renamed sensor does not stand in a graph at
    its last value forever. Of the rest, the SIGNAL_SERIES most-read get series.
    """

    def __init__(self, state_timeout_s: float) -> None:
        self._timeout_ms = state_timeout_s * 1000.0
        labels = (*MACHINE_LABELS, "signal")
        half_life = f"half-life {signal_stats.DEFAULT_HALF_LIFE_READINGS:g} readings"
        self.value = GaugeMetricFamily(
            "linepulse_signal_value", "Newest reading of a sensor signal (latest event time).", labels=labels
        )
        self.ew_mean = GaugeMetricFamily(
            "linepulse_signal_ew_mean",
            f"Exponentially weighted mean of a sensor signal, {half_life}: its level now.",
            labels=labels,
        )
        self.ew_std = GaugeMetricFamily(
            "linepulse_signal_ew_std",
            f"Exponentially weighted standard deviation of a sensor signal, {half_life}.",
            labels=labels,
        )
        self.readings = CounterMetricFamily(
            "linepulse_signal_readings", "Readings of a sensor signal since first seen.", labels=labels
        )

    def add(self, state: MachineState, counters: Counters, machine: list[str]) -> None:
        newest = state.last_seen_ms
        if newest is None:
            return
        since = newest - self._timeout_ms
        current = [
            (name, vector) for name, vector in state.signals.items() if vector[signal_stats.LAST_TS] >= since
        ]
        current.sort(key=lambda item: (-item[1][signal_stats.COUNT], item[0]))
        for name, vector in current[:SIGNAL_SERIES]:
            summary = signal_stats.summarize(vector)
            labels = [*machine, name]
            written = counters.signal_readings.get(name)
            if written is not None:  # a signal first read in a batch not yet written: none yet
                self.readings.add_metric(labels, float(written))
            for family, value in (
                (self.value, summary.last),
                (self.ew_mean, summary.ew_mean),
                (self.ew_std, summary.ew_std),
            ):
                if value is not None and math.isfinite(value):
                    family.add_metric(labels, value)

    def families(self) -> tuple[GaugeMetricFamily | CounterMetricFamily, ...]:
        return self.value, self.ew_mean, self.ew_std, self.readings


def _fully_productive_s(figures: WindowFigures) -> float | None:
    """OEE x planned busy time, the line view's weight (models/line.py): 0 for a machine that did not
    run or was not planned; unknown (None) when its OEE is undefined although it ran."""
    if figures.oee is not None:
        return figures.oee * figures.planned_s
    return 0.0 if figures.planned_s == 0 or figures.run_s == 0 else None


# Kinds whose alerts are about one signal or characteristic of the machine (the rest: the machine).
_ABOUT_A_SERIES: Final = frozenset({"drift", "spc", "quality_out_of_spec"})


def subject_label(alert: AlertState, machine: str) -> str:
    """``linepulse_active_alerts``' ``subject``: the signal or characteristic a drift, SPC or
    out-of-spec alert is about, without its product (products come from telemetry, lot numbers
    too: unbounded), so a product's alerts of one characteristic share a series and count in its
    value; else the machine (a stop, an anomaly, an OEE verdict: each shift's verdict continues one
    Prometheus alert, as a stop does, whatever the site's shifts)."""
    if alert.kind in _ABOUT_A_SERIES:
        return series_name(alert.subject)
    return machine


class MachineCollector(Collector):
    """Per-machine KPIs of the open hour, shift and day windows, read at scrape time.

    Labels come from the plant file (machines, states, loss categories) or from what the machine
    reported (reason codes, scrap reasons, products), of which at most LABEL_VALUES per machine, window
    and metric get their own series (the rest: OTHER), so series stay bounded whatever telemetry says.
    """

    def __init__(
        self,
        live: LiveMachines,
        plant: PlantConfig,
        clock: Callable[[], float] = time.time,
        tenant: str | None = None,
    ) -> None:
        """``tenant``: only that tenant's machines (``/metrics?tenant=ID``), else every machine."""
        self.live = live
        self.plant = plant
        self.clock = clock
        self.tenant = tenant
        self._calendars: dict[tuple[str, str], PlantCalendar] = {}

    def _scheduled(self, state: MachineState, now_ms: int) -> bool:
        """Whether the machine's site is in a shift now (a calendar per site, kept: it caches)."""
        site = (state.tenant, state.site)
        calendar = self._calendars.get(site)
        if calendar is None:
            calendar = self._calendars[site] = PlantCalendar.for_site(self.plant, *site)
        return calendar.is_scheduled(now_ms)

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        ratios = {
            name: GaugeMetricFamily(
                f"linepulse_{name}_ratio",
                f"{name.capitalize()} of the machine's current window (0..1), ISO 22400-2.",
                labels=WINDOW_LABELS,
            )
            for name in RATIOS
        }
        seconds = GaugeMetricFamily(
            "linepulse_window_seconds",
            "Seconds of the current window by time-model bucket; 'ideal' is ideal production time, "
            "'fully_productive' OEE x planned busy time (as the line view sums it).",
            labels=(*WINDOW_LABELS, "category"),
        )
        units = GaugeMetricFamily(
            "linepulse_window_units",
            "Units produced in the current window, good or scrap.",
            labels=(*WINDOW_LABELS, "quality"),
        )
        scrap_reasons = GaugeMetricFamily(
            "linepulse_window_scrap_units",
            "Scrap units in the current window by scrap reason.",
            labels=(*WINDOW_LABELS, "reason"),
        )
        losses = GaugeMetricFamily(
            "linepulse_loss_seconds",
            "Seconds lost in the current window by loss category, big loss, state and reason code.",
            labels=(*WINDOW_LABELS, "category", "big_loss", "state", "reason"),
        )
        big_losses = GaugeMetricFamily(
            "linepulse_big_loss_seconds",
            "The six big losses of the current window in seconds (rejects: ideal time of the scrap).",
            labels=(*WINDOW_LABELS, "loss"),
        )
        top_losses = GaugeMetricFamily(
            "linepulse_top_loss_seconds",
            "The current window's largest OEE time losses, rank 1 = largest.",
            labels=(*WINDOW_LABELS, "rank", "big_loss", "state", "reason"),
        )
        micro_stops = GaugeMetricFamily(
            "linepulse_micro_stops",
            "Unplanned stops shorter than micro_stop_s that started in the current window.",
            labels=WINDOW_LABELS,
        )
        cycle_time = GaugeMetricFamily(
            "linepulse_cycle_time_seconds",
            "Cycle time of the current window per product: quantiles (within 1 %), mean and ideal.",
            labels=(*WINDOW_LABELS, "product", "stat"),
        )
        cycles = GaugeMetricFamily(
            "linepulse_window_cycles",
            "Cycles reported in the current window per product.",
            labels=(*WINDOW_LABELS, "product"),
        )
        good = CounterMetricFamily(
            "linepulse_good_units", "Good units since first seen.", labels=MACHINE_LABELS
        )
        scrap = CounterMetricFamily(
            "linepulse_scrap_units", "Scrap units since first seen.", labels=MACHINE_LABELS
        )
        run = CounterMetricFamily(
            "linepulse_run_seconds", "Actual production seconds since first seen.", labels=MACHINE_LABELS
        )
        state_info = GaugeMetricFamily(
            "linepulse_machine_state",
            "1 for the machine's current state, 0 for the others.",
            labels=(*MACHINE_LABELS, "state"),
        )
        alerts = GaugeMetricFamily(
            "linepulse_active_alerts",
            "Open alerts by kind, subject (the signal or characteristic a drift, SPC or out-of-spec alert "
            "is about, without the product; else the machine) and severity.",
            labels=(*MACHINE_LABELS, "kind", "subject", "severity"),
        )
        event_time = GaugeMetricFamily(
            "linepulse_event_time_seconds",
            "Newest event time seen for the machine (Unix seconds).",
            labels=MACHINE_LABELS,
        )
        scheduled = GaugeMetricFamily(
            "linepulse_scheduled",
            "1 while the machine's site is in a shift by the plant calendar (always, for a site without "
            "shifts), 0 between shifts, on days off and holidays; by the computer's clock at the scrape.",
            labels=MACHINE_LABELS,
        )
        target = GaugeMetricFamily(
            "linepulse_oee_target_ratio", "The plant's OEE alert threshold (alerts.oee_below)."
        )
        unscored = GaugeMetricFamily(
            "linepulse_anomaly_unscored",
            "1 while the anomaly model serving the machine cannot score it (the machine has not sent "
            "some of the model's signals), 0 while it scores it.",
            labels=(*MACHINE_LABELS, "model"),
        )
        capability = GaugeMetricFamily(
            "linepulse_capability",
            "Cp, Cpk, Pp and Ppk of a quality characteristic (and product) over the newest shift "
            "(a local day without shifts) with monitoring.capability_min_parts parts: the trend a "
            "mentor reviews.",
            labels=(*MACHINE_LABELS, "characteristic", "product", "shift", "index"),
        )
        capability_parts = GaugeMetricFamily(
            "linepulse_capability_parts",
            "Parts measured in that shift for that characteristic and product (the shift of "
            "linepulse_capability, else the newest: indices come from that many).",
            labels=(*MACHINE_LABELS, "characteristic", "product", "shift"),
        )
        signals = _SignalFamilies(self.plant.state_timeout_s)
        if self.plant.alerts.oee_below is not None:
            target.add_metric([], self.plant.alerts.oee_below)
        now_ms = int(self.clock() * 1000)
        for state in self.live:
            if self.tenant is not None and state.tenant != self.tenant:
                continue
            machine = [state.tenant, state.site, state.line, state.machine]
            scheduled.add_metric(machine, 1.0 if self._scheduled(state, now_ms) else 0.0)
            for kind, window in state.windows.items():
                labels = [*machine, kind]
                figures = self._window(window, labels, ratios, seconds, units, scrap_reasons, losses)
                for name, value in figures.big_losses_s.items():
                    if value is not None:
                        big_losses.add_metric([*labels, name], value)
                for rank, loss in enumerate(figures.top_losses, start=1):
                    top_losses.add_metric(
                        [*labels, str(rank), loss["big_loss"], loss["state"], loss["reason"] or "-"],
                        loss["seconds"],
                    )
                micro_stops.add_metric(labels, figures.micro_stops)
                # Products come from telemetry: the LABEL_VALUES busiest get their own series, the
                # others' cycles are counted together as "other" (quantiles do not add up).
                products = sorted(window.cycle_products.items(), key=lambda item: (-item[1].count, item[0]))
                for product, stats in products[:LABEL_VALUES]:
                    cycle = stats.figures()
                    cycles.add_metric([*labels, product], float(stats.count))
                    for stat in ("mean", "p50", "p95", "p99", "ideal"):
                        value = cycle[f"{stat}_s"]
                        if value is not None:
                            cycle_time.add_metric([*labels, product, stat], float(value))
                if len(products) > LABEL_VALUES:
                    rest = float(sum(stats.count for _, stats in products[LABEL_VALUES:]))
                    cycles.add_metric([*labels, OTHER], rest)
            # As written to the changelog (streams.live.Counters: why not the state's own).
            counters = self.live.counters(state.key)
            good.add_metric(machine, counters.totals.good)
            scrap.add_metric(machine, counters.totals.scrap)
            run.add_metric(machine, counters.totals.run_ms / 1000.0)
            for name in MACHINE_STATES:
                state_info.add_metric([*machine, name], 1.0 if state.state == name else 0.0)
            # Per subject: a second drifting signal is an alert of its own (a notification), not a
            # count going from 1 to 2 on one already firing.
            open_alerts = Tally(
                (a.kind, subject_label(a, state.machine), a.severity) for a in state.alerts.values()
            )
            for (kind, subject, severity), count in sorted(open_alerts.items()):
                alerts.add_metric([*machine, kind, subject, severity], float(count))
            if state.last_seen_ms is not None:
                event_time.add_metric(machine, state.last_seen_ms / 1000.0)
            if state.anomaly is not None:
                unscored.add_metric([*machine, state.anomaly.model], 1.0 if state.anomaly.unscored else 0.0)
            self._capability(state, machine, capability, capability_parts)
            signals.add(state, counters, machine)
        yield from ratios.values()
        yield from signals.families()
        yield from (
            seconds,
            units,
            scrap_reasons,
            losses,
            big_losses,
            top_losses,
            micro_stops,
            cycle_time,
            cycles,
            good,
            scrap,
            run,
            state_info,
            alerts,
            event_time,
            scheduled,
            target,
            unscored,
            capability,
            capability_parts,
        )

    def _capability(
        self,
        state: MachineState,
        machine: list[str],
        capability: GaugeMetricFamily,
        parts: GaugeMetricFamily,
    ) -> None:
        """The newest shift of each characteristic and product; characteristics and products come
        from telemetry, so the LABEL_VALUES with the most parts get series (indices do not add up
        into an OTHER series)."""
        newest = newest_capability_by_shift(state, self.plant.monitoring.capability_min_parts)
        busiest = sorted(newest, key=lambda row: (-row.capability.n, row.characteristic))
        for row in busiest[:LABEL_VALUES]:
            labels = [*machine, row.characteristic, row.product or "-", row.shift or "-"]
            parts.add_metric(labels, float(row.capability.n))
            for index in ("cp", "cpk", "pp", "ppk"):
                value = getattr(row.capability, index)
                if value is not None and math.isfinite(value):
                    capability.add_metric([*labels, index], value)

    def _window(
        self,
        window: WindowAccumulator,
        labels: list[str],
        ratios: dict[str, GaugeMetricFamily],
        seconds: GaugeMetricFamily,
        units: GaugeMetricFamily,
        scrap_reasons: GaugeMetricFamily,
        losses: GaugeMetricFamily,
    ) -> WindowFigures:
        figures = window.figures()
        for name in RATIOS:
            value = getattr(figures, name)
            if value is not None:
                ratios[name].add_metric(labels, value)
        for category, value in (
            ("planned_busy", figures.planned_s),
            ("run", figures.run_s),
            ("ideal", figures.ideal_s),
            ("fully_productive", _fully_productive_s(figures)),
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
        for reason, count in _capped(window.scrap_by_reason.items()):
            scrap_reasons.add_metric([*labels, reason], count)
        loss_seconds: dict[tuple[str, str, str, str], float] = {}
        for rank, loss in enumerate(window.loss_entries()):  # largest first
            reason = (loss["reason"] or "-") if rank < LABEL_VALUES else OTHER
            key = (loss["category"], loss["big_loss"] or "-", loss["state"], reason)
            loss_seconds[key] = loss_seconds.get(key, 0.0) + loss["seconds"]
        for key, value in loss_seconds.items():
            losses.add_metric([*labels, *key], value)
        return figures
