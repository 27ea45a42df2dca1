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
  totals change are emitted again with the next revision. Older events are only counted, as
  telemetry of their own time (never of the cursor they are counted at); a too-late state change
  takes effect at the cursor unless a state reported at a newer event time superseded it.

In-order application is the numba kernel's (:mod:`models.time_kernel`, run by
:class:`~models.time_ledger.LedgerAccounting`); :mod:`models.accounting_reference` is the same
in plain Python, and the tests hold the kernel to it. This module adds allowed lateness on top.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from models import time_kernel
from models.alert_rules import AlertChange
from models.calendar import PlantCalendar
from models.event_rank import RANK_STATE, RANK_TOO_LATE
from models.lateness import (
    BEFORE_ALL,
    Entry,
    LatenessLog,
    Snapshot,
    payload,
    window_digest,
    window_id,
)
from models.ledger_accounting import LedgerAccounting
from models.machine_state import MachineState
from models.plant import MachineSpec, PlantConfig
from models.time_ledger import ledger_from_parts
from models.timemodel import WindowAccumulator

__all__ = ["ClosedWindow", "EngineOutput", "TimeAccounting"]


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
    alerts: list[AlertChange] = field(default_factory=list)
    late: bool = False  # older than the newest event but within the allowed lateness: corrected
    too_late: bool = False  # beyond the allowed lateness: counted, not merged


class TimeAccounting:
    """Applies time-model events (states, counts, cycles, heartbeats) to a machine's windows."""

    def __init__(self, plant: PlantConfig, calendar: PlantCalendar) -> None:
        self.plant = plant
        self.calendar = calendar
        self.in_order = LedgerAccounting(plant, calendar)
        self._lateness_ms = int(plant.allowed_lateness_s * 1000)
        self._snapshot_every_ms = max(self._lateness_ms // 2, 1000)

    # -- entry point ------------------------------------------------------------------------------

    def record(
        self,
        state: MachineState,
        spec: MachineSpec,
        ts_ms: int,
        rank: int,
        values: Sequence[Any],
        out: EngineOutput,
    ) -> None:
        """Apply one event in order, correct the windows for a late one, or count a too-late one.

        ``values`` by rank: state (state, reason); count (good, scrap, product, scrap reason);
        cycle (seconds, product); heartbeat and tick ().
        """
        cursor = state.cursor_ms
        if cursor is not None and ts_ms < cursor - self._lateness_ms:
            # Counted at the cursor, where the machine's time is; seen at its own time, so the state
            # is never believed past the machine's newest reading because an old one came in late.
            self._process(state, spec, cursor, RANK_TOO_LATE, (ts_ms,), out)
            if rank == RANK_STATE and ts_ms >= self._newest_state_ms(state):
                # The machine's state is always the newest one reported: a too-late change that no
                # newer one superseded takes effect now; the time before it is not rewritten. Older
                # reports that took effect at the same cursor are superseded by it, whatever order
                # the log would sort them in at one position.
                superseded = None
                if state.lateness is not None:
                    superseded = self._drop_superseded(state.lateness, cursor, ts_ms)
                self._process(state, spec, cursor, rank, (*values, ts_ms), out, superseded)
        else:
            superseded = None
            if rank == RANK_STATE and state.lateness is not None and cursor is not None and ts_ms <= cursor:
                superseded = self._drop_superseded(state.lateness, ts_ms, ts_ms)
            self._process(state, spec, ts_ms, rank, values, out, superseded)
        state.sync_totals()

    @staticmethod
    def _newest_state_ms(state: MachineState) -> int:
        """The event time of the newest state the machine reported (whatever time it took effect)."""
        newest = state.ledger.get(time_kernel.S_REPORTED)
        if newest is None:  # a state stored before the reported time was kept
            newest = state.state_since_ms
        return BEFORE_ALL[0] if newest is None else newest

    @staticmethod
    def _drop_superseded(log: LatenessLog, position_ms: int, reported_ms: int) -> Entry | None:
        """Take out of the log the too-late state changes that a state reported at ``reported_ms``,
        newer than they, supersedes although it is placed at ``position_ms``, before (or at) where
        they took effect: they never take effect (their too-late count stays). The first taken out,
        or None."""
        first = None
        at = bisect_left(log.events, [position_ms])
        for event in log.events[at:]:
            if event[1] == RANK_STATE and len(values := payload(event)) > 2 and values[2] < reported_ms:
                log.events.remove(event)
                first = event if first is None else first
        return first

    def _process(
        self,
        state: MachineState,
        spec: MachineSpec,
        ts_ms: int,
        rank: int,
        values: Sequence[Any],
        out: EngineOutput,
        superseded: Entry | None = None,
    ) -> None:
        """Apply an event at ``ts_ms``; with allowed lateness, log it and replay from before it if
        it is late, or from before ``superseded`` (a log entry it took out)."""
        out.too_late = out.too_late or rank == RANK_TOO_LATE
        if self._lateness_ms == 0:
            # No log to keep: the event goes straight to the kernel, never through JSON.
            for window in self.in_order.apply(state.ledger, spec, ts_ms, rank, values):
                out.closed.append(ClosedWindow(spec, window))
            return
        event: Entry = [ts_ms, rank, orjson.dumps(tuple(values)).decode()]
        log = state.lateness
        if log is None:
            log = state.lateness = LatenessLog([Snapshot(BEFORE_ALL, self._save(state))])
        late = bool(log.events) and event < log.events[-1]
        if late or superseded is not None:
            out.late = out.late or late
            log.insert(event)
            start = event if superseded is None else min(event, superseded)
            self._replay(state, spec, log, log.snapshot_before(start), out)
            return
        if event[0] - log.snapshots[-1].position[0] >= self._snapshot_every_ms:
            log.snapshots.append(Snapshot(event, self._save(state)))
        log.events.append(event)
        closed = self.in_order.apply(state.ledger, spec, ts_ms, rank, values)
        out.closed.extend(self._revisions(log, [ClosedWindow(spec, window) for window in closed]))
        log.forget_before(event[0] - self._lateness_ms)

    # -- allowed lateness -------------------------------------------------------------------------

    def _replay(
        self, state: MachineState, spec: MachineSpec, log: LatenessLog, start: int, out: EngineOutput
    ) -> None:
        """Restore snapshot ``start`` and apply the log from there; emit windows whose totals changed."""
        base = log.snapshots[start]
        later = log.snapshots[start + 1 :]
        del log.snapshots[start + 1 :]
        self._load(state, base.accounting)
        replayed: list[ClosedWindow] = []
        events = log.events_from(base.position)
        start = 0
        while start < len(events):
            while later and later[0].position <= events[start]:
                log.snapshots.append(Snapshot(later.pop(0).position, self._save(state)))
            # Up to the next snapshot position, the events go through the kernel in one run.
            end = start + 1
            while end < len(events) and not (later and later[0].position <= events[end]):
                end += 1
            chunk = [(event[0], event[1], payload(event)) for event in events[start:end]]
            for window in self.in_order.apply_many(state.ledger, spec, chunk):
                replayed.append(ClosedWindow(spec, window))
            start = end
        out.closed.extend(self._revisions(log, replayed))

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

    @staticmethod
    def _save(state: MachineState) -> dict[str, Any]:
        # to_parts builds every dict and list afresh from the arrays, and loading only reads the
        # snapshot into new arrays: a snapshot never shares anything with a ledger, so no copies.
        return state.ledger.to_parts()

    @staticmethod
    def _load(state: MachineState, data: dict[str, Any]) -> None:
        state.ledger = ledger_from_parts(data)
