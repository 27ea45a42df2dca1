"""One machine's KPI engine: event-time accounting of states, units, cycles, sensors and quality.

The engine is pure and deterministic: given the same events in the same order it produces the same
state and the same closed windows, whether it runs inside a Faust agent, in ``analyze`` or in a
benchmark. Its state (:mod:`models.machine_state`) is a plain dataclass that serialises to JSON for
the Faust table.

Time accounting (windows, micro-stops, allowed lateness) is :mod:`models.accounting`'s; this
module adds the sensors, drift/SPC monitors, capability (its per-shift history:
:mod:`models.capability_history`), anomaly scoring and alerts around it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol
from zoneinfo import ZoneInfo

import numpy as np

from models import alert_book, expected_level, sample_runs, signal_monitor, signal_stats
from models.accounting import ClosedWindow, EngineOutput, TimeAccounting
from models.anomaly.scoring import AnomalyModels, score_batch
from models.bounded_cache import bounded
from models.calendar import PlantCalendar
from models.capability_history import shift_capability
from models.event_rank import RANK_COUNT, RANK_CYCLE, RANK_HEARTBEAT, RANK_STATE, RANK_TICK
from models.machine_state import MachineState
from models.monitoring_config import CACHE_LIMIT, CYCLE_TIME_SIGNAL, MonitorSettings, SeriesKind
from models.plant import MachineSpec, PlantConfig
from models.spc.capability import Capability, CapabilityStats
from models.spc.rules import RULE_PATTERNS, RULE_POINTS
from models.stop_alerts import StopAlerts
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


@dataclass(frozen=True, slots=True)
class _Tuning:
    """One series' settings on one machine, with the vectors the kernels take of them."""

    settings: MonitorSettings
    params: np.ndarray  # signal_monitor's
    thermal: np.ndarray  # expected_level's
    key: str  # the monitor's key in MachineState.monitors
    buckets: float  # params' ADWIN row cap, as a state vector stores it (its layout)
    drift_key: str  # its drift and SPC alerts' keys in MachineState.alerts
    spc_key: str
    settle_ms: int  # settings.settle_s in the readings' unit


class _MonitorJob(NamedTuple):
    """One signal's readings of one batch as its drift/SPC monitor judges them (``expected``: the
    values are residuals from these expected levels)."""

    name: str
    times: np.ndarray
    values: np.ndarray
    expected: np.ndarray | None
    tuning: _Tuning  # the signal's, looked up once for the batch
    # What each expected level came from, when not all from one source: True where the interim
    # ambient's (no profile value yet). None: all from ``source``.
    interim: np.ndarray | None = None
    source: str = "profile"
    # The monitor starts afresh before these readings (the profile took over from the interim
    # ambient in this batch). Done when the job is judged, not when it is prepared: in a run of
    # batches the earlier batches' jobs, judged later, still belong to the old baseline.
    restart: bool = False


class _Pending(NamedTuple):
    """The detections of a batch for an alert that was open: the last one's evidence and message
    (its ``detectors`` the union of all), to update the alert with unless the batch resolves it."""

    evidence: dict[str, Any]
    message: str
    at_ms: int
    detections: int


class _Sited(Protocol):
    """A machine spec or state: what picks the machine's site calendar."""

    @property
    def tenant(self) -> str: ...

    @property
    def site(self) -> str: ...


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
        self._monitoring = plant.monitoring
        # Per (kind, series, machine): its settings and what the kernels take of them (settings_for
        # is a pydantic lookup of ~2 us, and this runs for every signal of every frame).
        self._tunings: dict[tuple[SeriesKind, str, str], _Tuning] = {}
        self._offsets: dict[tuple[int, ZoneInfo], int] = {}  # (epoch hour, zone) -> UTC offset (ms)

    def calendar_for(self, machine: _Sited) -> PlantCalendar:
        """The calendar of the machine's site: its own (plant.sites) or the plant's."""
        return self._time_of(machine)[0]

    def _accounting_for(self, machine: _Sited) -> TimeAccounting:
        return self._time_of(machine)[1]

    def _time_of(self, machine: _Sited) -> tuple[PlantCalendar, TimeAccounting]:
        if not self._site_time:
            return self._plant_time
        return self._site_time.get((machine.tenant, machine.site), self._plant_time)

    def new_state(self, spec: MachineSpec) -> MachineState:
        return MachineState(tenant=spec.tenant, site=spec.site, line=spec.line, machine=spec.id)

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
        if self._monitoring.enabled and not (out.late or out.too_late):
            value, reference = self._cycle_value(spec, seconds, product)
            if reference is not None:
                self._drop_seconds_baseline(state)
            if value is not None:
                self._judge_series(
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

    def _drop_seconds_baseline(self, state: MachineState) -> None:
        """A cycle-time monitor that learnt in seconds (stored before cycles were judged as ratios)
        starts a new baseline: ratios are capped at ``max_ratio``, so a mean above it is seconds."""
        key = f"cycle_time:{CYCLE_TIME_SIGNAL}"
        vector = state.monitors.get(key)
        cap = self._tuning("cycle_time", CYCLE_TIME_SIGNAL, state.machine).settings.max_ratio
        if vector is not None and vector[signal_monitor.BASE_MEAN] > cap:
            del state.monitors[key]

    def _cycle_value(
        self, spec: MachineSpec, seconds: float, product: str | None
    ) -> tuple[float | None, float | None]:
        """What the cycle-time monitor judges: the ratio to the product's ideal cycle, or seconds.

        Returns ``(value, reference)``; the reference of a ratio is 1.0 (the ideal), of seconds None
        (the baseline mean). ``(None, None)``: a product without an ideal on a machine that has
        ideals, which cannot be put on the ratio scale of the others.
        """
        settings = self._tuning("cycle_time", CYCLE_TIME_SIGNAL, spec.id).settings
        if not settings.relative_to_ideal or (spec.ideal_cycle_s is None and not spec.products):
            return seconds, None
        ideal = spec.ideal_cycle_for(product)
        if ideal is None or ideal <= 0:
            return None, None
        # Capped: one jammed cycle must not move the smoothed level past the gate on its own.
        return min(seconds / ideal, settings.max_ratio), 1.0

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
        (:meth:`_judge_quiet_runs`), else per batch.
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
        if not self._monitoring.enabled or len(batches) < 2:
            for ts_ms, series in batches:
                yield self._samples_after_stats(state, spec, ts_ms, series)
            return
        # Accounting batch by batch, in order; what each batch gives the monitors is set aside.
        outs: list[EngineOutput] = []
        judged: list[list[_MonitorJob]] = []
        for ts_ms, series in batches:
            outs.append(self._record(state, spec, ts_ms, RANK_HEARTBEAT, (), sample_runs.readings(series)))
            judged.append(self._monitor_jobs(state, spec, series))
        done = self._judge_quiet_runs(state, judged, joined)
        for out, jobs in zip(outs, judged, strict=True):
            for job in jobs:
                if job.name not in done:
                    self._judge(state, out, job)
            yield out

    def _judge_quiet_runs(
        self,
        state: MachineState,
        judged: Sequence[Sequence[_MonitorJob]],
        joined: Mapping[str, tuple[Sequence[np.ndarray], np.ndarray]],
    ) -> set[str]:
        """Judge each signal's readings of all the batches in one monitor call where that is what
        one call per batch would do; returns the signals so judged.

        The monitor is a stream: one call over the concatenated readings leaves the state of one
        call per batch (as stored; tests/unit/test_engine_runs.py), and its detections are theirs
        put together. When it detects nothing and the signal has no open drift/SPC alert, one call per
        batch would have produced nothing either (no alert to open, update or resolve), so the
        one call is all of it. Otherwise the state goes back to before the call and the caller
        judges batch by batch, so each alert keeps the batch, evidence and count it has one by one.
        That is the rare case: a monitor detects only under a shift (~5 us saved per signal and
        batch otherwise, the largest part of a frame's analytics).

        ``joined``: per signal, the arrays its statistics joined and the joined copy; a run of
        exactly those arrays (the readings judged as they came, no residuals, nothing cut off)
        is judged on that copy rather than joined again.
        """
        by_name: dict[str, list[np.ndarray]] = {}
        tunings: dict[str, _Tuning] = {}
        restarts: set[str] = set()  # a monitor starting afresh inside the run: batch by batch
        for jobs in judged:
            for job in jobs:
                if job.restart:
                    restarts.add(job.name)
                run = by_name.get(job.name)
                if run is None:
                    by_name[job.name] = [job.values]
                    tunings[job.name] = job.tuning
                else:
                    run.append(job.values)
        done: set[str] = set()
        alerts = state.alerts
        for name, run in by_name.items():
            tuning = tunings[name]
            if len(run) < 2 or tuning.drift_key in alerts or tuning.spc_key in alerts or name in restarts:
                continue
            vector = self._monitor_state(state, tuning)
            before = vector.copy()
            if signal_monitor.update(vector, sample_runs.joined_values(run, joined.get(name)), tuning.params):
                vector[:] = before  # a detection somewhere in the run: judged batch by batch
                continue
            done.add(name)
        return done

    def _samples_after_stats(
        self,
        state: MachineState,
        spec: MachineSpec,
        ts_ms: int,
        series: Sequence[tuple[str, np.ndarray, np.ndarray]],
    ) -> EngineOutput:
        """Everything :meth:`on_samples` does once the signal statistics are folded."""
        out = self._record(state, spec, ts_ms, RANK_HEARTBEAT, (), sample_runs.readings(series))
        if self._monitoring.enabled:
            for job in self._monitor_jobs(state, spec, series):
                self._judge(state, out, job)
        if self._anomaly_models is not None:
            self._check_anomaly(state, spec, series, out)
        return out

    def _judge(self, state: MachineState, out: EngineOutput, job: _MonitorJob) -> None:
        if job.restart:
            state.monitors.pop(_monitor_key("signals", job.name), None)
            if job.values.shape[0] == 0:
                return
        self._judge_series(
            state,
            out,
            "signals",
            job.name,
            job.times,
            job.values,
            expected=job.expected,
            tuning=job.tuning,
            expected_from=(job.source, job.interim),
        )

    def _monitor_jobs(
        self, state: MachineState, spec: MachineSpec, series: Sequence[tuple[str, np.ndarray, np.ndarray]]
    ) -> list[_MonitorJob]:
        """What the drift/SPC monitors are to judge of one batch, per signal (expected levels updated).

        Monitors change alerts and their own state, never the machine's state or another signal's
        expected level, so judging after all of a batch's signals are prepared is the same as
        judging each as it is prepared.
        """
        jobs: list[_MonitorJob] = []
        # Read once per batch, not per signal (each is a ledger lookup).
        running = state.state == "running"
        state_since = state.state_since_ms
        running_since = state_since if running else None
        for signal, times, values in series:
            tuning = self._tuning("signals", signal, spec.id)
            settings = tuning.settings
            if settings.expected_level != "none":
                job = self._residual_job(
                    state, signal, times, values, series, tuning, running, state_since or 0
                )
                if job is not None:
                    jobs.append(job)
                continue
            if signal in state.expected:
                # The expected level was switched off: its monitor learnt residuals (mean ~0),
                # so raw readings would look like a shift of hundreds of sigma. Start afresh.
                del state.expected[signal]
                state.monitors.pop(_monitor_key("signals", signal), None)
            # Sensor levels follow the machine state (idle vs running): judging idle readings
            # against a running baseline would raise a "drift" at every stop.
            if not settings.only_running:
                jobs.append(_MonitorJob(signal, times, values, None, tuning))
            elif running_since is not None:
                # Only readings taken after the machine has run for settle_s: a batch cut just
                # after a start still holds idle readings, and levels need a moment to settle.
                since = running_since + tuning.settle_ms
                if times[0] >= since:  # the usual case: the whole batch (no slicing, ~0.3 us)
                    jobs.append(_MonitorJob(signal, times, values, None, tuning))
                    continue
                first = int(np.searchsorted(times, since))
                if first < times.shape[0]:
                    jobs.append(_MonitorJob(signal, times[first:], values[first:], None, tuning))
        return jobs

    def _residual_job(
        self,
        state: MachineState,
        signal: str,
        times: np.ndarray,
        values: np.ndarray,
        series: Sequence[tuple[str, np.ndarray, np.ndarray]],
        tuning: _Tuning,
        running: bool,
        state_since_ms: int,
    ) -> _MonitorJob | None:
        """``reading - expected`` to judge (:mod:`models.expected_level`): thermal lag and ambient
        removed; None when there is nothing to judge yet. ``running`` and ``state_since_ms`` (0 when
        unknown) are the machine's state, which the caller reads once per batch."""
        settings = tuning.settings
        model = state.expected.get(signal)
        learnt_with = None if model is None else expected_level.uses_ambient(model)
        if learnt_with is not None and learnt_with != (settings.ambient_signal is not None):
            # ambient_signal was configured or removed since: the constants mean something else.
            model = None
            state.monitors.pop(_monitor_key("signals", signal), None)
        if model is None:
            model = state.expected[signal] = expected_level.new_state()
            # A monitor stored before this signal had a model learnt its baseline on raw readings.
            state.monitors.pop(_monitor_key("signals", signal), None)
        ambient: np.ndarray | None = None
        if settings.ambient_signal is not None:
            ambient = _ambient_at(
                series, settings.ambient_signal, times, state.signals.get(settings.ambient_signal)
            )
            if ambient is None:
                return None  # no hall reading seen yet: nothing to judge against
        # Which readings the interim ambient judged, only if it is on (an array per batch otherwise).
        interim = (
            np.empty(times.shape[0], dtype=np.bool_) if tuning.thermal[expected_level.P_INTERIM_MS] else None
        )  # (update() clears it)
        handovers = expected_level.handovers(model)
        expected = expected_level.update(
            model,
            times,
            values,
            tuning.thermal,
            running_since_ms=state_since_ms,
            running=running,
            utc_offset_ms=self._utc_offset_ms(state, int(times[0])) if times.shape[0] else 0,
            ambient=ambient,
            interim=interim,
        )
        # The profile took over from the interim ambient: its residuals have the same spread but
        # another mean (docs/drift-and-spc.md, "Temperatures: the first day"), so the monitor learns
        # a new baseline on them, from the handover on (the job's restart).
        handed_over = expected_level.handovers(model) != handovers
        finite = sample_runs.finite_count(expected)
        if finite == 0 and not handed_over:
            return None  # training, or no ambient yet: the usual batch of a signal's first hours
        # (count_nonzero below, not any(): ndarray.any costs ~3 us through numpy's Python layer.)
        if finite == expected.shape[0] and not (handed_over and interim is not None):
            residual = values - expected
        else:
            known = np.isfinite(expected)
            if handed_over and interim is not None:
                known &= ~interim  # judged against the interim ambient, before the new baseline
            times, values, expected = times[known], values[known], expected[known]
            interim = interim[known] if interim is not None else None
            residual = values - expected
        source = "ambient_signal" if ambient is not None else "profile"
        return _MonitorJob(
            signal,
            times,
            residual,
            expected,
            tuning,
            interim if interim is not None and np.count_nonzero(interim) else None,
            source,
            restart=handed_over,
        )

    def _utc_offset_ms(self, machine: _Sited, ts_ms: int) -> int:
        """The site's UTC offset at ``ts_ms`` (the ambient profile is by local hour); cached per hour."""
        calendar = self.calendar_for(machine)
        key = (ts_ms // 3_600_000, calendar.zone)
        cached = self._offsets.get(key)
        if cached is None:
            cached = bounded(self._offsets, CACHE_LIMIT)[key] = calendar.utc_offset_ms(key[0] * 3_600_000)
        return cached

    def _tuning(self, kind: SeriesKind, name: str, machine: str, series: str | None = None) -> _Tuning:
        """``name``'s settings for the monitor of ``series`` (``name`` itself unless one per product)."""
        series = series or name
        tuning = self._tunings.get((kind, series, machine))
        if tuning is None:
            settings = self._monitoring.settings_for(kind, name, machine)
            params = settings.params().vector()
            tuning = _Tuning(
                settings,
                params,
                settings.thermal_params().vector(),
                _monitor_key(kind, series),
                float(params[signal_monitor.P_ADWIN_BUCKETS]),
                _alert_key("drift", series),
                _alert_key("spc", series),
                int(settings.settle_s * 1000),
            )
            bounded(self._tunings, CACHE_LIMIT)[(kind, series, machine)] = tuning
        return tuning

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
            if state.anomaly is not None and state.anomaly.unscored:
                state.anomaly.clear_unseen()  # no model serves it any more: nothing is left unscored
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
        settings = self._tuning("characteristics", characteristic, spec.id).settings
        lsl = lsl if lsl is not None else settings.lsl
        usl = usl if usl is not None else settings.usl
        if self._monitoring.enabled and self._may_monitor(state, characteristic, product):
            # One monitor per product: products of one characteristic have their own nominal (a
            # 25 mm and a 32 mm part), and a changeover is no drift.
            self._judge_series(
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
        subject = characteristic if product is None else f"{characteristic}|{product}"
        key = f"quality_out_of_spec/{subject}"
        open_alert = state.alerts.get(key)
        above = usl is not None and value > usl
        if above or (lsl is not None and value < lsl):
            count = 1 if open_alert is None else int(open_alert.evidence.get("count", open_alert.count)) + 1
            part = characteristic if product is None else f"{characteristic} of {product}"
            message = f"{part} = {value:g} outside spec [{_limit_text(lsl)}, {_limit_text(usl)}]"
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
        if (
            product is None
            or _monitor_key("characteristics", f"{characteristic}@{product}") in state.monitors
        ):
            return True
        prefix = _monitor_key("characteristics", f"{characteristic}@")
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
            if closed.window.kind == "shift" and closed.revision == 0:
                self._check_shift_oee(state, spec, closed.window, out)
        return out

    # -- drift and SPC ----------------------------------------------------------------------------

    def _judge_series(
        self,
        state: MachineState,
        out: EngineOutput,
        kind: SeriesKind,
        name: str,
        times: np.ndarray,
        values: np.ndarray,
        reference: float | None = None,
        expected: np.ndarray | None = None,
        tuning: _Tuning | None = None,
        expected_from: tuple[str, np.ndarray | None] = ("profile", None),
        product: str | None = None,
    ) -> None:
        """Run one series' detectors over a batch; open, update or resolve its drift/SPC alerts.

        ``product``: the series is ``name``'s for that product (its own monitor and alerts, keyed
        ``name@product``; evidence ``signal`` is still ``name``, with ``product``).

        ``reference``: the level ``min_shift`` is a fraction of (1.0 for cycle times judged as a
        ratio to the ideal); None: the baseline mean. ``expected``: ``values`` are residuals
        ``reading - expected`` (the evidence then gives both). ``tuning``: the series' settings
        when the caller has them already. ``expected_from``: where the expected levels came from,
        and per reading True where the interim ambient's (or None).
        """
        series = name if product is None else f"{name}@{product}"
        if tuning is None:
            tuning = self._tuning(kind, name, state.machine, series)
        params, min_shift = tuning.params, tuning.settings.min_shift
        vector = self._monitor_state(state, tuning)
        detections = signal_monitor.update(vector, values, params)
        alerts = state.alerts
        if not detections and tuning.drift_key not in alerts and tuning.spc_key not in alerts:
            # The usual case: nothing detected and no alert of this series to update or resolve,
            # so the baseline and gap below would be read for nothing (~2 us of a frame's signal).
            return
        base = signal_monitor.baseline(vector)
        gap = _relative_gap(vector, base, reference) if min_shift > 0.0 else None
        # Detections of an alert open during this batch, applied after the resolution check below:
        # the detection that sees a series return to normal must not become the alert's evidence.
        pending: dict[str, _Pending] = {}
        for found in detections:
            assert base is not None  # nothing is detected before the baseline is complete
            alert_kind = _alert_kind(found)
            is_rule = alert_kind == "spc"
            alert_key = _alert_key(alert_kind, series)
            open_alert = state.alerts.get(alert_key)
            if gap is not None and gap[1] < min_shift and open_alert is None:
                # A shift the detectors can see but too small to act on (a designed slow run, a
                # recipe's spread): no new alert. An open one keeps being updated.
                continue
            # One alert per series and kind: four drift detectors agreeing on one shift are one
            # condition for the people acting on it; the evidence lists every detector that fired.
            earlier = pending.get(alert_key)
            fired = (
                set(earlier.evidence["detectors"])
                if earlier is not None
                else set(open_alert.evidence.get("detectors", ()))
                if open_alert is not None
                else set()
            )
            points = RULE_POINTS[int(found.detector[4:]) - 1] if is_rule else None
            # Rules on a characteristic judge against the I-MR (within) sigma, the rest against the overall
            # one: the evidence and the message both give the sigma the detection was judged by.
            sigma = base[1] if not is_rule or kind == "signals" else base[2]
            last_ms = int(times[found.last])
            evidence: dict[str, Any] = {
                "signal": name,
                "series": kind,
                "detector": found.detector,
                "detectors": sorted(fired | {found.detector}),
                "first_ts_ms": int(times[found.first]),
                "last_ts_ms": last_ms,
                "detections": found.count,
                **({} if product is None else {"product": product}),
                "rule_points": points,
                "value": found.value,
                "baseline_mean": base[0],
                "baseline_sigma": sigma,
                "shift_sigma": found.shift_sigma,
            }
            if expected is not None:
                # The detectors judged the residual; say so, with what was read and what was expected.
                evidence["judged"] = "residual"
                evidence["expected"] = float(expected[found.last])
                evidence["observed"] = float(expected[found.last] + found.value)
                # A manager weighs an alert judged against the first day's interim ambient differently.
                source, interim = expected_from
                evidence["expected_from"] = (
                    "interim" if interim is not None and interim[found.last] else source
                )
            if gap is not None:
                evidence["level"] = gap[0]
                evidence["reference"] = reference if reference is not None else base[0]
                evidence["relative_shift"] = gap[1]
            label = name if product is None else f"{name} ({product})"
            message = _drift_message(label, found, (base[0], sigma), gap, reference, expected)
            if open_alert is None:
                alert_book.open_alert(
                    state,
                    out,
                    alert_key,
                    kind=alert_kind,
                    subject=series,
                    severity="warning",
                    at_ms=last_ms,
                    message=message,
                    evidence=evidence,
                )
            else:
                detections_so_far = 0 if earlier is None else earlier.detections
                pending[alert_key] = _Pending(evidence, message, last_ms, detections_so_far + 1)
        # Gated series: back within half the gate is over too (hysteresis, so no flapping at it).
        back = gap is not None and gap[1] < min_shift / 2
        at_ms = int(times[-1]) if times.shape[0] else 0
        quiet: set[str] | None = None  # read from the state only when an alert is open (rarely)
        for alert_kind in ("drift", "spc"):
            alert_key = _alert_key(alert_kind, series)
            open_alert = state.alerts.get(alert_key)
            if open_alert is None:
                continue
            if quiet is None:
                quiet = set(signal_monitor.quiet_codes(vector, params))
            update = pending.get(alert_key)
            fired = (update.evidence if update is not None else open_alert.evidence).get("detectors", ())
            if back or quiet.issuperset(fired):
                # Resolved with the evidence last published; how it ended goes in the resolution.
                resolution: dict[str, Any] = {"by": "back_within_gate" if back else "detectors_quiet"}
                if gap is not None:
                    resolution["level"] = gap[0]
                    resolution["relative_shift"] = gap[1]
                if update is not None:
                    open_alert.count += update.detections
                    resolution["last_detection"] = {
                        key: update.evidence[key]
                        for key in ("detector", "first_ts_ms", "last_ts_ms", "value", "shift_sigma")
                    }
                resolution["detections"] = open_alert.count
                alert_book.resolve_alert(state, out, alert_key, at_ms, resolution)
            elif update is not None:
                alert_book.open_alert(
                    state,
                    out,
                    alert_key,
                    kind=alert_kind,
                    subject=name,
                    severity="warning",
                    at_ms=update.at_ms,
                    message=update.message,
                    evidence=update.evidence,
                    detections=update.detections,
                )

    @staticmethod
    def _monitor_state(state: MachineState, tuning: _Tuning) -> np.ndarray:
        """The series' monitor state vector, created if it has none or one of another layout."""
        vector = state.monitors.get(tuning.key)
        if vector is None or vector[signal_monitor.MAX_BUCKETS] != tuning.buckets:
            # New series, or a configuration whose ADWIN layout differs: start a new baseline.
            vector = state.monitors[tuning.key] = signal_monitor.new_state(
                signal_monitor.params_from_vector(tuning.params)
            )
        return vector

    def reset_baselines(
        self,
        state: MachineState,
        at_ms: int,
        series: SeriesKind | None = None,
        name: str | None = None,
    ) -> tuple[EngineOutput, list[str]]:
        """Drop the drift/SPC state of the matching series (every series when both are None).

        Each learns a new baseline, and SPC limits, from its next readings: the operator declares
        the current level the normal one (after a recalibration, a new tool, a new material lot).
        Their open drift/SPC alerts are resolved, since they compare against the dropped baseline.
        Returns the alert changes and the monitor keys (``"series:name"``) dropped.
        """
        out = EngineOutput()
        dropped = sorted(
            key
            for key in state.monitors
            if (series is None or key.partition(":")[0] == series)
            # A characteristic's name also matches its monitors per product (``name@product``).
            and (name is None or key.partition(":")[2].partition("@")[0] == name)
        )
        for key in dropped:
            del state.monitors[key]
            # A temperature's expected-level model (lag and ambient profile, a day to learn) stays:
            # the monitor's new baseline of its residuals declares the current offset normal.
            subject = key.partition(":")[2]
            for alert_kind in ("drift", "spc"):
                alert_book.resolve_alert(
                    state, out, _alert_key(alert_kind, subject), at_ms, {"by": "baseline_reset"}
                )
        return out, dropped

    def capability(self, state: MachineState) -> dict[str, Capability]:
        """Cp, Cpk, Pp and Ppk per "characteristic|product|shift" (for reports and the web API)."""
        return {key: stats.indices() for key, stats in state.capability.items()}

    # -- alerts -----------------------------------------------------------------------------------

    def stop_deadline(self, state: MachineState) -> int | None:
        """The stream time at which the machine's current stop becomes a ``machine_stopped`` alert
        (:meth:`models.stop_alerts.StopAlerts.deadline`)."""
        return self._stops.deadline(state)

    def on_stream_time(self, state: MachineState, spec: MachineSpec, stream_ms: int) -> EngineOutput:
        """The machine's partition reached ``stream_ms``: its stop judged on stream time
        (:meth:`models.stop_alerts.StopAlerts.on_stream_time`)."""
        return self._stops.on_stream_time(state, spec, stream_ms)

    def _check_shift_oee(
        self, state: MachineState, spec: MachineSpec, window: WindowAccumulator, out: EngineOutput
    ) -> None:
        """Each shift is its own condition: the previous shift's alert is resolved when the next
        shift's figure arrives (low or not), and a low shift opens its own."""
        threshold = self.plant.alerts.oee_below
        if threshold is None:
            return
        figures = window.figures()
        if figures.oee is None:
            return  # no planned time (a shift off): no figure to judge or to end the last one
        key = "oee_low"
        shift = window.shift or "shift"
        date = self.calendar_for(spec).local_date(window.start_ms).isoformat()
        ended = {"by": "next_shift", "shift": shift, "date": date, "oee": figures.oee}
        alert_book.resolve_alert(state, out, key, window.end_ms, ended)
        if figures.oee < threshold:
            alert_book.open_alert(
                state,
                out,
                key,
                kind="oee_low",
                subject=shift,
                severity="warning",
                at_ms=window.end_ms,
                message=(
                    f"{spec.name or spec.id}: OEE {figures.oee:.0%} in the {shift} shift of {date} "
                    f"(target {threshold:.0%}{_coverage_note(figures.coverage)})"
                ),
                evidence={
                    "shift": shift,
                    "date": date,
                    "oee": figures.oee,
                    "availability": figures.availability,
                    "performance": figures.performance,
                    "quality": figures.quality,
                    # How much of the shift the figure rests on: an hour of data in a 12-hour shift
                    # is weaker evidence than the whole shift (the rest is unknown, not counted).
                    "coverage": figures.coverage,
                    "unknown_s": figures.unknown_s,
                    "window_start_ms": window.start_ms,
                    "window_end_ms": window.end_ms,
                },
            )


def _monitor_key(kind: SeriesKind, series: str) -> str:
    """A series' key in ``MachineState.monitors`` ("signals:vibration"; a characteristic's monitor of
    one product "characteristics:bore@P1"); reset_baselines parses it back."""
    return f"{kind}:{series}"


def _alert_key(alert_kind: str, series: str) -> str:
    """A series' drift or SPC alert's key in ``MachineState.alerts`` ("drift/vibration")."""
    return f"{alert_kind}/{series}"


def _coverage_note(coverage: float | None) -> str:
    if coverage is None or coverage >= 0.995:
        return ""
    return f"; data for {coverage:.0%} of the shift"


# A hall reading this far from a temperature's readings no longer tells their ambient.
AMBIENT_MAX_AGE_MS = 600_000


def _ambient_at(
    series: Sequence[tuple[str, np.ndarray, np.ndarray]],
    name: str,
    times: np.ndarray,
    ambient_stats: np.ndarray | None,
) -> np.ndarray | None:
    """The ambient signal at ``times``: interpolated within this batch, else the ambient signal's
    newest reading (it may come in messages of its own) if it is at most 10 minutes away."""
    for signal, amb_times, amb_values in series:
        if signal == name and amb_times.shape[0]:
            at_times: np.ndarray = np.interp(times, amb_times, amb_values)
            return at_times
    if ambient_stats is None or not np.isfinite(ambient_stats[signal_stats.LAST]):
        return None
    if abs(int(times[0]) - int(ambient_stats[signal_stats.LAST_TS])) > AMBIENT_MAX_AGE_MS:
        return None
    return np.full(times.shape[0], float(ambient_stats[signal_stats.LAST]))


def _limit_text(limit: float | None) -> str:
    return "-" if limit is None else f"{limit:g}"


def _drift_message(
    name: str,
    found: signal_monitor.Detection,
    baseline: tuple[float, float],
    gap: tuple[float, float] | None,
    reference: float | None,
    expected: np.ndarray | None = None,
) -> str:
    if found.detector.startswith("rule"):
        # A pattern rule's point need not be far out (rule 4's alternation, rule 7's calm): name the
        # pattern, not a "shift" of that point's z.
        pattern = RULE_PATTERNS[int(found.detector.removeprefix("rule")) - 1]
        figures = f"{found.detector} ({pattern}), last point at {found.shift_sigma:+.1f} sigma"
    else:
        figures = f"{found.detector} detects a shift of {found.shift_sigma:+.1f} sigma"
    if expected is not None:
        at = float(expected[found.last])
        return (
            f"{name}: {figures} from its expected level "
            f"(reading {at + found.value:.4g}, expected {at:.4g}, residual {found.value:+.3g})"
        )
    if gap is not None and reference is not None:
        # A ratio to the ideal: say it the way the OEE does, as a speed.
        return f"{name}: cycles at {gap[0]:.2f}x the ideal ({figures}, last value {found.value:.2f}x)"
    return f"{name}: {figures} (value {found.value:g}, baseline {baseline[0]:g} +/- {baseline[1]:g})"


def _alert_kind(found: signal_monitor.Detection) -> str:
    return "spc" if found.detector.startswith("rule") else "drift"


def _relative_gap(
    vector: np.ndarray, base: tuple[float, float, float] | None, reference: float | None
) -> tuple[float, float] | None:
    """``(level, |level - reference| / |reference|)`` with the EWMA's level; None before a baseline."""
    if base is None:
        return None
    level = base[0] + base[1] * signal_monitor.ewma_shift(vector)
    ref = base[0] if reference is None else reference
    return level, abs(level - ref) / max(abs(ref), 1e-12)
