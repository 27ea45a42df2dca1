"""One machine's KPI engine: event-time accounting of states, units, cycles, sensors and quality.

The engine is pure and deterministic: given the same events in the same order it produces the same
state and the same closed windows, whether it runs inside a Faust agent, in ``analyze`` or in a
benchmark. Its state (:mod:`models.machine_state`) is a plain dataclass that serialises to JSON for
the Faust table.

Time accounting (windows, micro-stops, allowed lateness) is :mod:`models.accounting`'s; this
module adds the sensors' statistics, capability (its per-shift history:
:mod:`models.capability_history`), anomaly scoring, out-of-spec and shift OEE alerts around it, and
hands each batch's series to the drift/SPC monitors (:mod:`models.series_monitors`) and each state
change to the stop alerts (:mod:`models.stop_alerts`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from models import alert_book, sample_runs, signal_stats
from models.accounting import ClosedWindow, EngineOutput, TimeAccounting
from models.anomaly.scoring import AnomalyModels, score_batch
from models.calendar import PlantCalendar
from models.capability_history import shift_capability
from models.event_rank import RANK_COUNT, RANK_CYCLE, RANK_HEARTBEAT, RANK_STATE, RANK_TICK
from models.machine_state import MachineState
from models.monitoring_config import CYCLE_TIME_SIGNAL, SeriesKind
from models.plant import MachineSpec, PlantConfig
from models.series_monitors import MonitorJob, SeriesMonitors, Sited, monitor_key
from models.spc.capability import Capability, CapabilityStats
from models.stop_alerts import StopAlerts
from models.subjects import SERIES_SEPARATOR, parts_of, series_of
from models.timemodel import WindowAccumulator

__all__ = [
    "MAX_PRODUCT_MONITORS",
    "ClosedWindow",
    "EngineOutput",
    "MachineEngine",
]

# Drift/SPC monitors per quality characteristic, one per product (product ids come from telemetry:
# the machine state must stay bounded; parts of further products are not judged, documented).
MAX_PRODUCT_MONITORS = 32


class MachineEngine:
    """Applies telemetry to a :class:`MachineState`; one instance serves every machine of a plant."""

    def __init__(self, plant: PlantConfig, anomaly_models: AnomalyModels | None = None) -> None:
        self.plant = plant
        self._anomaly_models = anomaly_models
        self.calendar = PlantCalendar.from_plant(plant)
        self.accounting = TimeAccounting(plant, self.calendar)
        # Sites with a calendar of their own (plant.sites), by tenant and site: built once, looked up
        # once per event or batch; every other machine uses the plant's calendar and accounting.
        self._plant_time = (self.calendar, self.accounting)
        self._site_time: dict[tuple[str, str], tuple[PlantCalendar, TimeAccounting]] = {}
        for site in plant.sites:
            calendar = PlantCalendar.for_site(plant, site.tenant, site.site)
            self._site_time[site.key] = (calendar, TimeAccounting(plant, calendar))
        self._stops = StopAlerts(plant)
        self._in_spec_to_resolve = plant.alerts.in_spec_to_resolve
        self._series = SeriesMonitors(plant, self.calendar_for)
        self._monitoring_on = plant.monitoring.enabled

    def calendar_for(self, machine: Sited) -> PlantCalendar:
        """The calendar of the machine's site: its own (plant.sites) or the plant's."""
        return self._time_of(machine)[0]

    def _accounting_for(self, machine: Sited) -> TimeAccounting:
        return self._time_of(machine)[1]

    def _time_of(self, machine: Sited) -> tuple[PlantCalendar, TimeAccounting]:
        if not self._site_time:
            return self._plant_time
        return self._site_time.get((machine.tenant, machine.site), self._plant_time)

    def new_state(self, spec: MachineSpec) -> MachineState:
        return MachineState(tenant=spec.tenant, site=spec.site, line=spec.line, machine=spec.id)

    def state_of(self, spec: MachineSpec, stored: MachineState | None) -> MachineState:
        """The machine's state to apply telemetry to: the stored one, with the site and line the plant
        file gives now (a machine moved to another line keeps its history, under its new labels:
        its KPI records already carry them, /metrics and /api read them from here), else a new one."""
        if stored is None:
            return self.new_state(spec)
        if stored.site != spec.site or stored.line != spec.line:
            stored.site, stored.line = spec.site, spec.line
        return stored

    # -- events -----------------------------------------------------------------------------------

    def on_state(
        self, state: MachineState, spec: MachineSpec, ts_ms: int, new_state: str, reason: str | None
    ) -> EngineOutput:
        return self._record(state, spec, ts_ms, RANK_STATE, (new_state, reason))

    def on_count(
        self,
        state: MachineState,
        spec: MachineSpec,
        ts_ms: int,
        good: int,
        scrap: int,
        product: str | None,
        scrap_reason: str | None,
    ) -> EngineOutput:
        state.totals.good += good
        state.totals.scrap += scrap
        return self._record(state, spec, ts_ms, RANK_COUNT, (good, scrap, product, scrap_reason))

    def on_cycle(
        self, state: MachineState, spec: MachineSpec, ts_ms: int, seconds: float, product: str | None = None
    ) -> EngineOutput:
        out = self._record(state, spec, ts_ms, RANK_CYCLE, (seconds, product))
        if self._monitoring_on and not (out.late or out.too_late):
            value, reference = self._series.cycle_value(spec, seconds, product)
            if reference is not None:
                self._series.drop_seconds_baseline(state)
            if value is not None:
                self._series.judge_series(
                    state, out, "cycle_time", CYCLE_TIME_SIGNAL,
                    np.array([ts_ms], dtype=np.int64), np.array([value], dtype=np.float64),
                    reference=reference,
                )  # fmt: skip
        return out

    def on_tick(self, state: MachineState, spec: MachineSpec, ts_ms: int) -> EngineOutput:
        """The plant's clock reached ``ts_ms`` without telemetry from this machine (a watermark).

        The machine's time is accounted up to there (``unknown`` beyond ``state_timeout_s`` after
        its newest event) and the windows that ended are closed, so a machine that went silent
        still gets its hour, shift and day records. A tick at or before the machine's own time
        changes nothing.
        """
        if state.cursor_ms is None or ts_ms <= state.cursor_ms:
            return EngineOutput()
        return self._record(state, spec, ts_ms, RANK_TICK, ())

    def on_samples(
        self,
        state: MachineState,
        spec: MachineSpec,
        ts_ms: int,
        series: Sequence[tuple[str, np.ndarray, np.ndarray]],
    ) -> EngineOutput:
        """Batched readings: (signal, epoch-ms times, values) per signal, folded by numba kernels."""
        for signal, times, values in series:
            vector = state.signals.get(signal)
            if vector is None:
                vector = state.signals[signal] = signal_stats.new_state()
            signal_stats.update(vector, times, values)
        return self._samples_after_stats(state, spec, ts_ms, series)

    def on_samples_each(
        self,
        state: MachineState,
        spec: MachineSpec,
        batches: Sequence[tuple[int, Sequence[tuple[str, np.ndarray, np.ndarray]]]],
    ) -> Iterator[EngineOutput]:
        """:meth:`on_samples` for each ``(ts_ms, series)`` in turn: the same state and, batch by
        batch, the same outputs, each yielded as soon as its batch is applied (its alerts refer to
        alert states that later batches update, so turn them into records before the next).

        Cheaper for consecutive messages of one machine: each signal's statistics take all the
        batches in one kernel call (:func:`models.signal_stats.update_runs`, bit for bit the same
        as one call per batch). They are folded first, because nothing else reads them; time
        accounting and alerts run per batch, in order, exactly as one by one, and each signal's
        drift/SPC monitor takes the run in one call where that is the same
        (:meth:`models.series_monitors.SeriesMonitors.judge_quiet_runs`), else per batch.
        """
        if self._anomaly_models is not None:
            # The anomaly window's features follow each batch's own series: keep them one by one.
            for ts_ms, series in batches:
                yield self.on_samples(state, spec, ts_ms, series)
            return
        runs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for _, series in batches:
            for signal, times, values in series:
                run = runs.get(signal)
                if run is None:
                    runs[signal] = [(times, values)]
                else:
                    run.append((times, values))
        # Each signal's values joined for its statistics, and the arrays joined: the monitors
        # judge the same run and take the joined copy instead of making their own.
        joined: dict[str, tuple[list[np.ndarray], np.ndarray]] = {}
        # Signals whose runs have the same lengths (a frame's signals usually do) are folded two or
        # three side by side in one kernel call (signal_stats.update_runs_side_by_side).
        alike: list[sample_runs.StatsRun] = []
        for signal, run in runs.items():
            vector = state.signals.get(signal)
            if vector is None:
                vector = state.signals[signal] = signal_stats.new_state()
            if len(run) == 1:
                signal_stats.update(vector, *run[0])
                continue
            sizes = tuple([values.shape[0] for _, values in run])
            # Each batch's readings are oldest first (every decoder checks it, and the settle cut and
            # expected levels rely on it too), so each one's newest is its last: its timestamp is all
            # the statistics read of the times (joining them copied 8 bytes a reading, ~6 us of a
            # 5,000-reading frame).
            lasts = np.array([times[-1] for times, _ in run], dtype=np.int64)
            parts = [values for _, values in run]
            values = np.concatenate(parts)
            joined[signal] = (parts, values)
            if alike and alike[0].sizes != sizes:
                sample_runs.fold_stats(alike)
                alike = []
            alike.append(sample_runs.StatsRun(vector, lasts, values, sizes))
        sample_runs.fold_stats(alike)
        if not self._monitoring_on or len(batches) < 2:
            for ts_ms, series in batches:
                yield self._samples_after_stats(state, spec, ts_ms, series)
            return
        # Accounting batch by batch, in order; what each batch gives the monitors is set aside.
        outs: list[EngineOutput] = []
        judged: list[list[MonitorJob]] = []
        for ts_ms, series in batches:
            outs.append(self._record(state, spec, ts_ms, RANK_HEARTBEAT, (), sample_runs.readings(series)))
            judged.append(self._series.monitor_jobs(state, spec, series))
        done = self._series.judge_quiet_runs(state, judged, joined)
        for out, jobs in zip(outs, judged, strict=True):
            for job in jobs:
                if job.name not in done:
                    self._series.judge(state, out, job)
            yield out

    def _samples_after_stats(
        self,
        state: MachineState,
        spec: MachineSpec,
        ts_ms: int,
        series: Sequence[tuple[str, np.ndarray, np.ndarray]],
    ) -> EngineOutput:
        """Everything :meth:`on_samples` does once the signal statistics are folded."""
        out = self._record(state, spec, ts_ms, RANK_HEARTBEAT, (), sample_runs.readings(series))
        if self._monitoring_on:
            for job in self._series.monitor_jobs(state, spec, series):
                self._series.judge(state, out, job)
        if self._anomaly_models is not None:
            self._check_anomaly(state, spec, series, out)
        return out

    def _check_anomaly(
        self,
        state: MachineState,
        spec: MachineSpec,
        series: Sequence[tuple[str, np.ndarray, np.ndarray]],
        out: EngineOutput,
    ) -> None:
        """Score the batch with the machine's model (:mod:`models.anomaly.scoring`); one alert per episode."""
        assert self._anomaly_models is not None
        model = self._anomaly_models.model_for(spec)
        if model is None:
            if state.anomaly is not None and not self._anomaly_models.may_still_serve(state.anomaly.model):
                # No model serves it any more (removed, or its manifest no longer lists the machine):
                # an open episode would stay open for ever, and the view would name a gone model.
                newest = max((int(times[-1]) for _, times, _ in series if times.shape[0]), default=None)
                if newest is not None:
                    ended = {"by": "model_removed", "model": state.anomaly.model}
                    alert_book.resolve_alert(state, out, "anomaly", newest, ended)
                    state.anomaly = None
            return
        state.anomaly, batch = score_batch(model, state.anomaly, series)
        if batch.rows == 0:
            return
        at_ms = int(batch.ts_ms[batch.worst])
        if not batch.any_flagged:
            if state.anomaly.quiet >= model.resolve_after:
                resolution = {"by": "scores_normal", "quiet": state.anomaly.quiet}
                alert_book.resolve_alert(state, out, "anomaly", at_ms, resolution)
            return
        score = float(batch.scores[batch.worst])
        alert_book.open_alert(
            state,
            out,
            "anomaly",
            kind="anomaly",
            subject=spec.id,
            severity="warning",
            at_ms=int(batch.ts_ms[int(batch.flagged.argmax())]),
            message=(
                f"{spec.name or spec.id}: anomaly score {score:.3g} "
                f"above {model.threshold:.3g} ({model.label})"
            ),
            evidence={
                "model": model.name,
                "model_version": model.version,
                "score": score,
                "threshold": model.threshold,
                "flagged_rows": int(batch.flagged.sum()),
                "rows": batch.rows,
                "top_features": [{"feature": name, "contribution": value} for name, value in batch.top],
            },
        )

    def on_quality(
        self,
        state: MachineState,
        spec: MachineSpec,
        ts_ms: int,
        characteristic: str,
        value: float,
        lsl: float | None,
        usl: float | None,
        product: str | None = None,
    ) -> EngineOutput:
        out = self._record(state, spec, ts_ms, RANK_HEARTBEAT, ())
        # The part's own limits, else the plant file's (monitoring.characteristics, overrides).
        settings = self._series.tuning("characteristics", characteristic, spec.id).settings
        lsl, usl = settings.spec_limits(lsl, usl)
        if self._monitoring_on and self._may_monitor(state, characteristic, product):
            # One monitor per product: products of one characteristic have their own nominal (a
            # 25 mm and a 32 mm part), and a changeover is no drift.
            self._series.judge_series(
                state, out, "characteristics", characteristic,
                np.array([ts_ms], dtype=np.int64), np.array([value], dtype=np.float64), product=product,
            )  # fmt: skip
            calendar = self.calendar_for(spec)
            shift = calendar.shift_at(ts_ms) if calendar.shifts else None
            series = f"{characteristic}|{product or '-'}"
            cap_key = f"{series}|{shift.shift if shift is not None else '-'}"
            stats = state.capability.get(cap_key)
            if stats is None:
                stats = state.capability[cap_key] = CapabilityStats()
            stats.update(value, lsl, usl)
            shift_capability(state, series, shift or calendar.day_at(ts_ms)).update(value, lsl, usl)
        self._check_spec(state, out, ts_ms, characteristic, value, lsl, usl, product)
        return out

    def _check_spec(
        self,
        state: MachineState,
        out: EngineOutput,
        ts_ms: int,
        characteristic: str,
        value: float,
        lsl: float | None,
        usl: float | None,
        product: str | None,
    ) -> None:
        """One open alert per characteristic and product while parts keep failing (count and last
        value kept up to date); resolved after ``in_spec_to_resolve`` consecutive in-spec parts."""
        # Without a product the key is the characteristic alone (as alerts stored before products).
        subject = parts_of(characteristic, product)
        key = f"quality_out_of_spec/{subject}"
        open_alert = state.alerts.get(key)
        above = usl is not None and value > usl
        if above or (lsl is not None and value < lsl):
            count = 1 if open_alert is None else int(open_alert.evidence.get("count", open_alert.count)) + 1
            part = characteristic if product is None else f"{characteristic} of {product}"
            message = f"{part} = {_exact(value)} outside spec [{_limit_text(lsl)}, {_limit_text(usl)}]"
            # One bad part is scrap the inspection caught; parts that keep failing are the process
            # making scrap: the people on shift must contain it (critical routes to them).
            escalate = self.plant.alerts.out_of_spec_critical_after
            alert_book.open_alert(
                state,
                out,
                key,
                kind="quality_out_of_spec",
                subject=subject,
                severity="critical" if escalate is not None and count >= escalate else "warning",
                at_ms=ts_ms,
                message=message if count == 1 else f"{message}; {count} parts out of spec",
                evidence={
                    "characteristic": characteristic,
                    "product": product,
                    "value": value,
                    "lsl": lsl,
                    "usl": usl,
                    "side": "above" if above else "below",
                    "count": count,
                },
                refresh=True,
            )
        elif open_alert is not None:
            open_alert.quiet += 1
            if open_alert.quiet >= self._in_spec_to_resolve:
                resolution = {"by": "in_spec_parts", "parts": open_alert.quiet, "value": value}
                alert_book.resolve_alert(state, out, key, ts_ms, resolution)

    @staticmethod
    def _may_monitor(state: MachineState, characteristic: str, product: str | None) -> bool:
        """Whether the part is judged: a product's monitor exists or may be created (the state is
        bounded, and product ids come from telemetry: at most MAX_PRODUCT_MONITORS per characteristic)."""
        if product is None:
            return True
        if monitor_key("characteristics", series_of(characteristic, product)) in state.monitors:
            return True
        prefix = monitor_key("characteristics", f"{characteristic}{SERIES_SEPARATOR}")
        return sum(key.startswith(prefix) for key in state.monitors) < MAX_PRODUCT_MONITORS

    def _record(
        self,
        state: MachineState,
        spec: MachineSpec,
        ts_ms: int,
        rank: int,
        values: Sequence[Any],
        readings: int = 0,
    ) -> EngineOutput:
        """Count the event, account it (:mod:`models.accounting`) and check the time-based alerts."""
        out = EngineOutput()
        if rank != RANK_TICK:
            state.totals.events += 1
            state.totals.readings += readings
        # Only a state event can end a stop: the one case where the state before it is needed.
        before = (state.ledger.state_reason, state.state_since_ms) if rank == RANK_STATE else None
        self._accounting_for(spec).record(state, spec, ts_ms, rank, values, out)
        if before is not None and state.state_since_ms != before[1]:
            self._stops.check_ended(state, spec, out, before)
        self._stops.check(state, spec, out)
        for closed in out.closed:
            if closed.window.kind == self._oee_verdict_window(spec) and closed.revision == 0:
                self._check_shift_oee(state, spec, closed.window, out)
        return out

    # -- drift and SPC ----------------------------------------------------------------------------

    def reset_baselines(
        self,
        state: MachineState,
        at_ms: int,
        series: SeriesKind | None = None,
        name: str | None = None,
    ) -> tuple[EngineOutput, list[str]]:
        """Drop the drift/SPC state of the matching series, resolving their alerts
        (:meth:`models.series_monitors.SeriesMonitors.reset_baselines`)."""
        return self._series.reset_baselines(state, at_ms, series, name)

    def capability(self, state: MachineState) -> dict[str, Capability]:
        """Cp, Cpk, Pp and Ppk per "characteristic|product|shift" (for reports and the web API)."""
        min_parts = self.plant.monitoring.capability_min_parts
        return {key: stats.indices(min_parts=min_parts) for key, stats in state.capability.items()}

    # -- alerts -----------------------------------------------------------------------------------

    def stop_deadline(self, state: MachineState) -> int | None:
        """The stream time at which the machine's current stop becomes a ``machine_stopped`` alert
        (:meth:`models.stop_alerts.StopAlerts.deadline`)."""
        return self._stops.deadline(state)

    def on_stream_time(self, state: MachineState, spec: MachineSpec, stream_ms: int) -> EngineOutput:
        """The machine's partition reached ``stream_ms``: its stop judged on stream time
        (:meth:`models.stop_alerts.StopAlerts.on_stream_time`)."""
        return self._stops.on_stream_time(state, spec, stream_ms)

    def _oee_verdict_window(self, spec: MachineSpec) -> str:
        """The window whose close is judged against ``alerts.oee_below``: the shift, or the
        production day at a site without shifts (which has no shift windows: a 24/7 plant)."""
        return "shift" if self.calendar_for(spec).shifts else "day"

    def _check_shift_oee(
        self, state: MachineState, spec: MachineSpec, window: WindowAccumulator, out: EngineOutput
    ) -> None:
        """Each shift (or day, at a site without shifts) is its own condition: the previous one's
        alert is resolved when the next one's figure arrives (low or not), and a low one, or one
        whose planned time produced nothing, opens its own."""
        threshold = self.plant.alerts.oee_below
        if threshold is None:
            return
        figures = window.figures()
        # OEE is undefined (null) when nothing was produced, but planned time that produced nothing,
        # known to have run or stood, is the worst verdict, not none: a counter that failed, a
        # machine running empty or down all shift. One that reported cycles made something: its
        # gateway sends no counts, which says nothing of its output. Only a machine that makes units
        # (an ideal cycle time in the plant file, or counts sent once): a compressor or a chiller
        # reporting states and sensors produces nothing by nature.
        makes_units = (
            spec.ideal_cycle_s is not None
            or bool(spec.products)
            or state.totals.good + state.totals.scrap > 0
        )
        nothing_made = (
            figures.oee is None
            and figures.planned_s > 0
            and figures.good + figures.scrap == 0
            and (figures.coverage or 0.0) > 0
            and not any(stats.count for stats in window.cycle_products.values())
        )
        if figures.oee is None and not nothing_made:
            return  # no planned time (a shift off), or no data: nothing to judge or to end the last one
        key = "oee_low"
        date = self.calendar_for(spec).local_date(window.start_ms).isoformat()
        if window.kind == "shift":
            shift = window.shift or "shift"
            period, ended_by, subject = f"the {shift} shift of {date}", "next_shift", shift
        else:
            shift = None
            period, ended_by, subject = f"the production day {date}", "next_day", date
        ended = {"by": ended_by, "shift": shift, "date": date, "oee": figures.oee}
        # Ended for a machine that makes no units too: one opened before it was told apart.
        alert_book.resolve_alert(state, out, key, window.end_ms, ended)
        if figures.oee is None:
            if not makes_units:
                return
            verdict = f"nothing produced in {period} (OEE undefined; "
        elif figures.oee < threshold:
            verdict = f"OEE {figures.oee:.0%} in {period} ("
        else:
            return
        alert_book.open_alert(
            state,
            out,
            key,
            kind="oee_low",
            subject=subject,
            severity="warning",
            at_ms=window.end_ms,
            message=(
                f"{spec.name or spec.id}: {verdict}target {threshold:.0%}"
                f"{_coverage_note(figures.coverage, window.kind)})"
            ),
            evidence={
                "window": window.kind,
                "shift": shift,
                "date": date,
                "oee": figures.oee,
                "produced": figures.good + figures.scrap,
                "availability": figures.availability,
                "performance": figures.performance,
                "quality": figures.quality,
                # How much of the shift the figure rests on: an hour of data in a 12-hour shift is
                # weaker evidence than the whole shift (the rest is unknown, not counted).
                "coverage": figures.coverage,
                "unknown_s": figures.unknown_s,
                "window_start_ms": window.start_ms,
                "window_end_ms": window.end_ms,
            },
        )


def _coverage_note(coverage: float | None, window_kind: str) -> str:
    if coverage is None or coverage >= 0.995:
        return ""
    return f"; data for {coverage:.0%} of the {window_kind}"


def _limit_text(limit: float | None) -> str:
    return "-" if limit is None else _exact(limit)


def _exact(number: float) -> str:
    """As short as it reads back exactly: a part 0.002 over 1250.05 must not print as 1250.05."""
    short = f"{number:.15g}"
    return short if float(short) == number else repr(float(number))
