"""Event-time accounting of one machine's time and units into its hour, shift and day windows.

The machine's state holds from its state event until the next one, but is only believed for
``state_timeout_s`` after the newest telemetry of the machine; beyond that the time is ``unknown``.
Every interval is split exactly at hour, shift and day boundaries; a window closes when the
machine's event time passes its end.

Two refinements make the figures what a plant manager expects:

- Micro-stops: an unplanned stop is undecided until it ends or lasts ``micro_stop_s``. Its time
  waits in the windows it touches; a short stop becomes a small stop (performance loss inside actual
  production time), a long one availability loss. A window whose end passes during an undecided stop
  waits (at most ``micro_stop_s``) in ``closing`` before it is emitted.
- Allowed lateness (:mod:`models.lateness`): an event older than the newest one, but not by more
  than ``allowed_lateness_s``, is put in its place and the accounting replayed, and windows whose
  totals change are emitted again with the next revision. Older events are only counted.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from models.calendar import PlantCalendar, WindowKind, WindowSpan
from models.lateness import (
    BEFORE_ALL,
    RANK_COUNT,
    RANK_CYCLE,
    RANK_STATE,
    RANK_TOO_LATE,
    Entry,
    LatenessLog,
    Snapshot,
    payload,
    window_digest,
    window_id,
)
from models.plant import BigLoss, LossCategory, MachineSpec, PlantConfig
from models.timemodel import WindowAccumulator, loss_key

if TYPE_CHECKING:
    from models.machine import MachineState

__all__ = ["WINDOW_KINDS", "ClosedWindow", "EngineOutput", "TimeAccounting"]

WINDOW_KINDS: tuple[WindowKind, ...] = ("hour", "shift", "day")
_OPERATING = (LossCategory.PRODUCTION, LossCategory.PERFORMANCE)
_NO_DATA = loss_key(LossCategory.UNKNOWN, None, "no_data", None)
# Running again after these states: the first units of the run are startup production.
_STARTUP_AFTER = frozenset({"setup", "down", "planned_stop"})
# Fields of MachineState that the accounting owns: what a lateness snapshot saves and restores.
_SCALARS = (
    "cursor_ms",
    "last_seen_ms",
    "state",
    "reason",
    "state_since_ms",
    "stop_since_ms",
    "stop_settled",
    "pending_stop_ms",
    "startup_until_ms",
)


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    """A window whose end the machine's event time has passed. ``revision`` > 0: a late event
    within the allowed lateness changed its totals after an earlier record."""

    machine: MachineSpec
    window: WindowAccumulator
    revision: int = 0


@dataclass(slots=True)
class EngineOutput:
    closed: list[ClosedWindow] = field(default_factory=list)
    alerts: list[Any] = field(default_factory=list)  # models.alert_rules.AlertChange
    late: bool = False  # older than the newest event but within the allowed lateness: corrected
    too_late: bool = False  # beyond the allowed lateness: counted, not merged


class TimeAccounting:
    """Applies time-model events (states, counts, cycles, heartbeats) to a machine's windows."""

    def __init__(self, plant: PlantConfig, calendar: PlantCalendar) -> None:
        self.plant = plant
        self.calendar = calendar
        self._timeout_ms = int(plant.state_timeout_s * 1000)
        self._micro_ms = None if plant.micro_stop_s is None else int(plant.micro_stop_s * 1000)
        self._startup_ms = None if plant.startup_s is None else int(plant.startup_s * 1000)
        self._lateness_ms = int(plant.allowed_lateness_s * 1000)
        self._snapshot_every_ms = max(self._lateness_ms // 2, 1000)
        self._has_shifts = bool(plant.shifts)
        self._classes: dict[tuple[str | None, str | None], tuple[LossCategory, BigLoss | None]] = {}

    # -- entry point ------------------------------------------------------------------------------

    def record(self, state: MachineState, spec: MachineSpec, event: Entry, out: EngineOutput) -> None:
        """Apply one event in order, correct the windows for a late one, or count a too-late one."""
        cursor = state.cursor_ms
        if cursor is not None and event[0] < cursor - self._lateness_ms:
            self._process(state, spec, [cursor, RANK_TOO_LATE, "[]"], out)
            if event[1] != RANK_STATE or (
                state.state_since_ms is not None and event[0] < state.state_since_ms
            ):
                return
            # The machine's state is always the newest one reported: a too-late change that no newer
            # one superseded takes effect now; the time before it is not rewritten.
            event = [cursor, RANK_STATE, event[2]]
        self._process(state, spec, event, out)

    def _process(self, state: MachineState, spec: MachineSpec, event: Entry, out: EngineOutput) -> None:
        if self._lateness_ms == 0:
            self._apply(state, spec, event, out)
            return
        log = state.lateness
        if log is None:
            log = state.lateness = LatenessLog([Snapshot(BEFORE_ALL, self._save(state))])
        if log.events and event < log.events[-1]:
            out.late = True
            log.insert(event)
            self._replay(state, spec, log, log.snapshot_before(event), out)
            return
        if event[0] - log.snapshots[-1].position[0] >= self._snapshot_every_ms:
            log.snapshots.append(Snapshot(event, self._save(state)))
        log.events.append(event)
        applied = EngineOutput()
        self._apply(state, spec, event, applied)
        out.too_late = out.too_late or applied.too_late
        out.closed.extend(self._revisions(log, applied.closed))
        log.forget_before(event[0] - self._lateness_ms)

    def _count_too_late(self, state: MachineState, out: EngineOutput) -> None:
        out.too_late = True
        state.totals.late_events += 1
        for window in state.windows.values():
            window.late_events += 1

    # -- applying one event in order --------------------------------------------------------------

    def _apply(self, state: MachineState, spec: MachineSpec, event: Entry, out: EngineOutput) -> None:
        ts_ms, rank = event[0], event[1]
        self.advance(state, ts_ms, out, spec)
        if rank == RANK_STATE:
            new_state, reason = payload(event)
            self._change_state(state, ts_ms, new_state, reason, out, spec)
        elif rank == RANK_COUNT:
            good, scrap, product, scrap_reason = payload(event)
            startup = state.startup_until_ms is not None and ts_ms < state.startup_until_ms
            ideal = spec.ideal_cycle_for(product)
            for window in state.windows.values():
                window.add_units(good, scrap, ideal, scrap_reason, startup)
        elif rank == RANK_CYCLE:
            seconds, product = payload(event)
            ideal = spec.ideal_cycle_for(product)
            for window in state.windows.values():
                window.add_cycle(seconds, product, ideal)
        elif rank == RANK_TOO_LATE:
            self._count_too_late(state, out)

    def _change_state(
        self,
        state: MachineState,
        ts_ms: int,
        new_state: str,
        reason: str | None,
        out: EngineOutput,
        spec: MachineSpec,
    ) -> None:
        was_stop = self._classify(state.state, state.reason)[1] is BigLoss.UNPLANNED_STOPS
        is_stop = self._classify(new_state, reason)[1] is BigLoss.UNPLANNED_STOPS
        undecided = self._micro_ms is not None and was_stop and not state.stop_settled
        if undecided and not is_stop:
            self._settle_stop(state, spec, out, small_stop=True)
            undecided = False
        if is_stop and not was_stop:
            state.stop_since_ms, state.stop_settled = ts_ms, self._micro_ms is None
            undecided = not state.stop_settled
            if undecided:
                for window in state.windows.values():
                    window.pending_started = True
        if new_state == "down" and state.state != "down":
            # A breakdown starts (a change of reason while down is the same breakdown): MTBF, MTTR.
            # Inside an undecided stop it only counts if the stop turns out not to be a small stop.
            for window in state.windows.values():
                if undecided:
                    window.pending_failures += 1
                else:
                    window.failures += 1
        if new_state == "running" and state.state in _STARTUP_AFTER and self._startup_ms is not None:
            state.startup_until_ms = ts_ms + self._startup_ms
        if new_state != state.state or reason != state.reason:
            state.state, state.reason, state.state_since_ms = new_state, reason, ts_ms

    # -- time -------------------------------------------------------------------------------------

    def advance(self, state: MachineState, ts_ms: int, out: EngineOutput, spec: MachineSpec) -> None:
        """Account machine time up to ``ts_ms`` and close every window it passes."""
        if state.cursor_ms is None:
            state.cursor_ms = ts_ms
            self._open_windows(state, ts_ms)
            for window in state.windows.values():
                # A machine first seen mid-window: the part before is lost coverage, not absent.
                self._book_no_data(window, window.start_ms, ts_ms)
        while state.cursor_ms < ts_ms:
            self._advance_segment(state, spec, ts_ms, out)
        state.last_seen_ms = ts_ms if state.last_seen_ms is None else max(state.last_seen_ms, ts_ms)

    def _advance_segment(self, state: MachineState, spec: MachineSpec, ts_ms: int, out: EngineOutput) -> None:
        cursor = state.cursor_ms
        assert cursor is not None
        boundary = min(window.end_ms for window in state.windows.values())
        shift_open = "shift" in state.windows
        if not shift_open and self._has_shifts:
            next_shift = self.calendar.next_shift_start(cursor)
            if next_shift is not None:
                boundary = min(boundary, next_shift)
        believed_until = (state.last_seen_ms if state.last_seen_ms is not None else cursor) + self._timeout_ms
        believed = cursor < believed_until
        if believed:
            boundary = min(boundary, believed_until)
            category, big_loss = self._classify(state.state, state.reason)
            key = loss_key(category, big_loss, state.state or "-", state.reason)
        else:
            category, big_loss, key = LossCategory.UNKNOWN, None, _NO_DATA
        decide_at = None
        if (
            believed
            and big_loss is BigLoss.UNPLANNED_STOPS
            and not state.stop_settled
            and state.stop_since_ms is not None
            and self._micro_ms is not None
        ):
            decide_at = state.stop_since_ms + self._micro_ms
            boundary = min(boundary, decide_at)
        segment_end = min(ts_ms, boundary)
        scheduled = shift_open or not self._has_shifts
        duration = segment_end - cursor
        for window in state.windows.values():
            if decide_at is not None and scheduled:
                window.add_pending(duration, key)
            else:
                window.add_time(duration, category, scheduled, key)
        if decide_at is not None:
            state.pending_stop_ms += duration if scheduled else 0
        elif category in _OPERATING:
            state.totals.run_ms += duration
        state.cursor_ms = segment_end
        if decide_at is not None and segment_end >= decide_at:
            self._settle_stop(state, spec, out, small_stop=False)
        self._roll_windows(state, spec, segment_end, out)

    def _settle_stop(
        self, state: MachineState, spec: MachineSpec, out: EngineOutput, small_stop: bool
    ) -> None:
        """The undecided stop ended (a small stop) or reached micro_stop_s (availability loss)."""
        for window in (*state.windows.values(), *state.closing):
            window.settle_stop(small_stop)
        if small_stop:
            state.totals.run_ms += state.pending_stop_ms
        state.pending_stop_ms = 0
        state.stop_settled = True
        for window in state.closing:
            out.closed.append(ClosedWindow(spec, window))
        state.closing = []

    def _open_windows(self, state: MachineState, ts_ms: int) -> None:
        for kind in WINDOW_KINDS:
            if kind not in state.windows:
                span = self.calendar.window_at(kind, ts_ms)
                if span is not None:
                    state.windows[kind] = _accumulator(span)

    def _book_no_data(self, window: WindowAccumulator, start_ms: int, end_ms: int) -> None:
        cursor = start_ms
        while cursor < end_ms:
            shift = self.calendar.shift_at(cursor) if self._has_shifts else None
            if shift is not None or not self._has_shifts:
                until = min(end_ms, shift.end_ms if shift is not None else end_ms)
                window.add_time(until - cursor, LossCategory.UNKNOWN, True, _NO_DATA)
            else:
                next_shift = self.calendar.next_shift_start(cursor)
                until = end_ms if next_shift is None else min(end_ms, next_shift)
                window.add_time(until - cursor, LossCategory.UNKNOWN, False, _NO_DATA)
            cursor = until

    def _roll_windows(self, state: MachineState, spec: MachineSpec, at_ms: int, out: EngineOutput) -> None:
        for kind in WINDOW_KINDS:
            window = state.windows.get(kind)
            if window is not None and window.end_ms <= at_ms:
                del state.windows[kind]
                if window.has_pending:
                    state.closing.append(window)  # waits for the undecided stop
                else:
                    out.closed.append(ClosedWindow(spec, window))
        self._open_windows(state, at_ms)

    def _classify(self, state: str | None, reason: str | None) -> tuple[LossCategory, BigLoss | None]:
        found = self._classes.get((state, reason))
        if found is None:
            found = self._classes[(state, reason)] = (
                self.plant.classify(state, reason),
                self.plant.big_loss(state, reason),
            )
        return found

    # -- allowed lateness -------------------------------------------------------------------------

    def _replay(
        self, state: MachineState, spec: MachineSpec, log: LatenessLog, start: int, out: EngineOutput
    ) -> None:
        """Restore snapshot ``start`` and apply the log from there; emit windows whose totals changed."""
        base = log.snapshots[start]
        later = log.snapshots[start + 1 :]
        del log.snapshots[start + 1 :]
        self._load(state, base.accounting)
        replayed = EngineOutput()
        for event in log.events_from(base.position):
            while later and later[0].position <= event:
                log.snapshots.append(Snapshot(later.pop(0).position, self._save(state)))
            self._apply(state, spec, event, replayed)
        out.closed.extend(self._revisions(log, replayed.closed))

    @staticmethod
    def _revisions(log: LatenessLog, closed: list[ClosedWindow]) -> list[ClosedWindow]:
        """The closed windows to emit: new ones as revision 0, emitted ones again only if their
        totals changed, with the next revision. A replay can close a window again (e.g. one that a
        late stop now holds back for its micro-stop decision), in order or not."""
        emit = []
        for item in closed:
            window = item.window
            wid = window_id(window.kind, window.start_ms)
            digest = window_digest(window.to_dict())
            previous = log.emitted.get(wid)
            if previous is not None and previous[1] == digest:
                continue
            revision = 0 if previous is None else previous[0] + 1
            log.emitted[wid] = [revision, digest, window.end_ms]
            emit.append(ClosedWindow(item.machine, window, revision))
        return emit

    def _save(self, state: MachineState) -> dict[str, Any]:
        data: dict[str, Any] = {name: getattr(state, name) for name in _SCALARS}
        data["windows"] = {kind: copy.deepcopy(window.to_dict()) for kind, window in state.windows.items()}
        data["closing"] = [copy.deepcopy(window.to_dict()) for window in state.closing]
        data["run_ms"] = state.totals.run_ms
        data["late_events"] = state.totals.late_events
        return data

    def _load(self, state: MachineState, data: dict[str, Any]) -> None:
        for name in _SCALARS:
            setattr(state, name, data[name])
        state.windows = {
            kind: WindowAccumulator.from_dict(copy.deepcopy(window))
            for kind, window in data["windows"].items()
        }
        state.closing = [WindowAccumulator.from_dict(copy.deepcopy(window)) for window in data["closing"]]
        state.totals.run_ms = data["run_ms"]
        state.totals.late_events = data["late_events"]


def _accumulator(span: WindowSpan) -> WindowAccumulator:
    return WindowAccumulator(kind=span.kind, shift=span.shift, start_ms=span.start_ms, end_ms=span.end_ms)
