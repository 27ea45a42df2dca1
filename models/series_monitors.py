"""Drift and SPC monitoring of a machine's series: sensor signals, quality characteristics, cycle time.

Each monitored series has a drift/SPC monitor state in ``MachineState.monitors``
(:mod:`models.signal_monitor`: Page-Hinkley, CUSUM, EWMA, ADWIN, I-MR and the Nelson rules), a
temperature first an expected level (:mod:`models.expected_level`) so that its residuals are
judged, and its detections become one drift and one SPC alert per series, opened, updated and
resolved here (:mod:`models.alert_book`). :class:`SeriesMonitors` holds what is the same for every
machine of a plant (settings per series, cached); the engine (:mod:`models.machine`) calls it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np

from models import alert_book, expected_level, sample_runs, signal_monitor, signal_stats
from models.accounting import EngineOutput
from models.bounded_cache import bounded
from models.calendar import PlantCalendar
from models.machine_state import MachineState
from models.monitoring_config import CACHE_LIMIT, CYCLE_TIME_SIGNAL, MonitorSettings, SeriesKind
from models.plant import MachineSpec, PlantConfig
from models.spc.rules import RULE_PATTERNS, RULE_POINTS
from models.subjects import series_name, series_of

__all__ = ["MonitorJob", "SeriesMonitors", "Sited", "Tuning", "monitor_key", "monitor_subject"]


class Sited(Protocol):
    """A machine spec or state: what picks the machine's site calendar."""

    @property
    def tenant(self) -> str: ...

    @property
    def site(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Tuning:
    """One series' settings on one machine, with the vectors the kernels take of them."""

    settings: MonitorSettings
    params: np.ndarray  # signal_monitor's
    thermal: np.ndarray  # expected_level's
    key: str  # the monitor's key in MachineState.monitors
    buckets: float  # params' ADWIN row cap, as a state vector stores it (its layout)
    drift_key: str  # its drift and SPC alerts' keys in MachineState.alerts
    spc_key: str
    settle_ms: int  # settings.settle_s in the readings' unit


class MonitorJob(NamedTuple):
    """One signal's readings of one batch as its drift/SPC monitor judges them (``expected``: the
    values are residuals from these expected levels)."""

    name: str
    times: np.ndarray
    values: np.ndarray
    expected: np.ndarray | None
    tuning: Tuning  # the signal's, looked up once for the batch
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


class SeriesMonitors:
    """The drift/SPC monitors of every machine of a plant (the state is each machine's)."""

    def __init__(self, plant: PlantConfig, calendar_for: Callable[[Sited], PlantCalendar]) -> None:
        self._monitoring = plant.monitoring
        self._calendar_for = calendar_for
        # Per (kind, series, machine): its settings and what the kernels take of them (settings_for
        # is a pydantic lookup of ~2 us, and this runs for every signal of every frame).
        self._tunings: dict[tuple[SeriesKind, str, str], Tuning] = {}

    def tuning(self, kind: SeriesKind, name: str, machine: str, series: str | None = None) -> Tuning:
        """``name``'s settings for the monitor of ``series`` (``name`` itself unless one per product)."""
        series = series or name
        tuning = self._tunings.get((kind, series, machine))
        if tuning is None:
            settings = self._monitoring.settings_for(kind, name, machine)
            params = settings.params().vector()
            tuning = Tuning(
                settings,
                params,
                settings.thermal_params().vector(),
                monitor_key(kind, series),
                float(params[signal_monitor.P_ADWIN_BUCKETS]),
                _alert_key("drift", series),
                _alert_key("spc", series),
                int(settings.settle_s * 1000),
            )
            bounded(self._tunings, CACHE_LIMIT)[(kind, series, machine)] = tuning
        return tuning

    def drop_seconds_baseline(self, state: MachineState) -> None:
        """A cycle-time monitor that learnt in seconds (stored before cycles were judged as ratios)
        starts a new baseline: ratios are capped at ``max_ratio``, so a mean above it is seconds."""
        key = monitor_key("cycle_time", CYCLE_TIME_SIGNAL)
        vector = state.monitors.get(key)
        cap = self.tuning("cycle_time", CYCLE_TIME_SIGNAL, state.machine).settings.max_ratio
        if vector is not None and vector[signal_monitor.BASE_MEAN] > cap:
            del state.monitors[key]

    def cycle_value(
        self, spec: MachineSpec, seconds: float, product: str | None
    ) -> tuple[float | None, float | None]:
        """What the cycle-time monitor judges: the ratio to the product's ideal cycle, or seconds.

        Returns ``(value, reference)``; the reference of a ratio is 1.0 (the ideal), of seconds None
        (the baseline mean). ``(None, None)``: a product without an ideal on a machine that has
        ideals, which cannot be put on the ratio scale of the others.
        """
        settings = self.tuning("cycle_time", CYCLE_TIME_SIGNAL, spec.id).settings
        if not settings.relative_to_ideal or (spec.ideal_cycle_s is None and not spec.products):
            return seconds, None
        ideal = spec.ideal_cycle_for(product)
        if ideal is None or ideal <= 0:
            return None, None
        # Capped: one jammed cycle must not move the smoothed level past the gate on its own.
        return min(seconds / ideal, settings.max_ratio), 1.0

    def monitor_jobs(
        self, state: MachineState, spec: MachineSpec, series: Sequence[tuple[str, np.ndarray, np.ndarray]]
    ) -> list[MonitorJob]:
        """What the drift/SPC monitors are to judge of one batch, per signal (expected levels updated).

        Monitors change alerts and their own state, never the machine's state or another signal's
        expected level, so judging after all of a batch's signals are prepared is the same as
        judging each as it is prepared.
        """
        jobs: list[MonitorJob] = []
        # Read once per batch, not per signal (each is a ledger lookup).
        running = state.state == "running"
        state_since = state.state_since_ms
        running_since = state_since if running else None
        for signal, times, values in series:
            tuning = self.tuning("signals", signal, spec.id)
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
                state.monitors.pop(monitor_key("signals", signal), None)
            # Sensor levels follow the machine state (idle vs running): judging idle readings
            # against a running baseline would raise a "drift" at every stop.
            if not settings.only_running:
                jobs.append(MonitorJob(signal, times, values, None, tuning))
            elif running_since is not None:
                # Only readings taken after the machine has run for settle_s: a batch cut just
                # after a start still holds idle readings, and levels need a moment to settle.
                since = running_since + tuning.settle_ms
                if times[0] >= since:  # the usual case: the whole batch (no slicing, ~0.3 us)
                    jobs.append(MonitorJob(signal, times, values, None, tuning))
                    continue
                first = int(np.searchsorted(times, since))
                if first < times.shape[0]:
                    jobs.append(MonitorJob(signal, times[first:], values[first:], None, tuning))
        return jobs

    def _residual_job(
        self,
        state: MachineState,
        signal: str,
        times: np.ndarray,
        values: np.ndarray,
        series: Sequence[tuple[str, np.ndarray, np.ndarray]],
        tuning: Tuning,
        running: bool,
        state_since_ms: int,
    ) -> MonitorJob | None:
        """``reading - expected`` to judge (:mod:`models.expected_level`): thermal lag and ambient
        removed; None when there is nothing to judge yet. ``running`` and ``state_since_ms`` (0 when
        unknown) are the machine's state, which the caller reads once per batch."""
        settings = tuning.settings
        model = state.expected.get(signal)
        learnt_with = None if model is None else expected_level.uses_ambient(model)
        if learnt_with is not None and learnt_with != (settings.ambient_signal is not None):
            # ambient_signal was configured or removed since: the constants mean something else.
            model = None
            state.monitors.pop(monitor_key("signals", signal), None)
        if model is None:
            model = state.expected[signal] = expected_level.new_state()
            # A monitor stored before this signal had a model learnt its baseline on raw readings.
            state.monitors.pop(monitor_key("signals", signal), None)
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
        # The profile is by local hour: readings on either side of a change of the clocks are
        # placed by their own offset, as if the batch had been cut there (the model is a stream).
        parts = [
            expected_level.update(
                model,
                times[lo:hi],
                values[lo:hi],
                tuning.thermal,
                running_since_ms=state_since_ms,
                running=running,
                utc_offset_ms=offset,
                ambient=None if ambient is None else ambient[lo:hi],
                interim=None if interim is None else interim[lo:hi],
            )
            for lo, hi, offset in self._calendar_for(state).utc_offset_runs(times) or [(0, 0, 0)]
        ]
        expected = parts[0] if len(parts) == 1 else np.concatenate(parts)
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
        return MonitorJob(
            signal,
            times,
            residual,
            expected,
            tuning,
            interim if interim is not None and np.count_nonzero(interim) else None,
            source,
            restart=handed_over,
        )

    def judge_quiet_runs(
        self,
        state: MachineState,
        judged: Sequence[Sequence[MonitorJob]],
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
        tunings: dict[str, Tuning] = {}
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

    def judge(self, state: MachineState, out: EngineOutput, job: MonitorJob) -> None:
        if job.restart:
            state.monitors.pop(monitor_key("signals", job.name), None)
            if job.values.shape[0] == 0:
                return
        self.judge_series(
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

    def judge_series(
        self,
        state: MachineState,
        out: EngineOutput,
        kind: SeriesKind,
        name: str,
        times: np.ndarray,
        values: np.ndarray,
        reference: float | None = None,
        expected: np.ndarray | None = None,
        tuning: Tuning | None = None,
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
        series = series_of(name, product)
        if tuning is None:
            tuning = self.tuning(kind, name, state.machine, series)
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
    def _monitor_state(state: MachineState, tuning: Tuning) -> np.ndarray:
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
            if (series is None or monitor_subject(key)[0] == series)
            # A characteristic's name also matches its monitors per product (``name@product``).
            and (name is None or monitor_subject(key)[1] == name)
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


def monitor_key(kind: SeriesKind, series: str) -> str:
    """A series' key in ``MachineState.monitors`` ("signals:vibration"; a characteristic's monitor of
    one product "characteristics:bore@P1"); :func:`monitor_subject` parses it back."""
    return f"{kind}:{series}"


def monitor_subject(key: str) -> tuple[str, str]:
    """``(kind, name)`` of a monitor's key, a characteristic's product left out: ("characteristics",
    "bore") for "characteristics:bore@P1"."""
    kind, _, series = key.partition(":")
    return kind, series_name(series)


def _alert_key(alert_kind: str, series: str) -> str:
    """A series' drift or SPC alert's key in ``MachineState.alerts`` ("drift/vibration")."""
    return f"{alert_kind}/{series}"


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
