"""The pure-Python reference of the time-model kernel: slow, plain, and the definition of right.

:mod:`models.time_kernel` does the same accounting in numba over array state. Every behaviour is
written here once more in the plainest Python, on :class:`~models.timemodel.WindowAccumulator`
objects, and the property tests feed both the same random event streams and require identical
windows, emissions and machine scalars (``tests/unit/test_time_kernel.py``). The benchmark
``benchmarks/bench_timemodel.py`` measures the kernel's events/s against this module in the same run.

Only in-order application is defined here: allowed lateness is a layer above both
(:mod:`models.accounting`), which replays events through whichever applies them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.calendar import PlantCalendar, WindowSpan
from models.event_rank import RANK_COUNT, RANK_CYCLE, RANK_STATE, RANK_TICK, RANK_TOO_LATE
from models.plant import BigLoss, LossCategory, MachineSpec, PlantConfig
from models.timemodel import NO_DATA_KEY, STARTUP_AFTER, WINDOW_KINDS, WindowAccumulator, loss_key

__all__ = ["ReferenceAccounting", "ReferenceLedger"]

_OPERATING = (LossCategory.PRODUCTION, LossCategory.PERFORMANCE)


@dataclass(slots=True)
class ReferenceLedger:
    """One machine's accounting state, as plain Python objects."""

    cursor_ms: int | None = None
    last_seen_ms: int | None = None
    state: str | None = None
    reason: str | None = None
    state_since_ms: int | None = None
    state_reported_ms: int | None = None  # the event time of the newest state reported
    stop_since_ms: int | None = None
    stop_settled: bool = True
    pending_stop_ms: int = 0
    startup_until_ms: int | None = None
    run_ms: int = 0
    late_events: int = 0
    windows: dict[str, WindowAccumulator] = field(default_factory=dict)
    closing: list[WindowAccumulator] = field(default_factory=list)


class ReferenceAccounting:
    """Applies time-model events in order to a :class:`ReferenceLedger`; returns closed windows."""

    def __init__(self, plant: PlantConfig, calendar: PlantCalendar) -> None:
        self.plant = plant
        self.calendar = calendar
        self._timeout_ms = int(plant.state_timeout_s * 1000)
        self._micro_ms = None if plant.micro_stop_s is None else int(plant.micro_stop_s * 1000)
        self._startup_ms = None if plant.startup_s is None else int(plant.startup_s * 1000)
        self._has_shifts = bool(calendar.shifts)  # a site may have its own shifts

    def apply(
        self, ledger: ReferenceLedger, spec: MachineSpec, ts_ms: int, rank: int, values: tuple[Any, ...]
    ) -> list[WindowAccumulator]:
        """Apply one event whose time is not older than the ledger's cursor; return closed windows.

        A too-late event is applied at the cursor with its own time as one more value (a state:
        ``(state, reason, own time)``; a too-late count: ``(own time,)``, or ``()`` when unknown):
        the machine was seen then, not at the cursor.
        """
        closed: list[WindowAccumulator] = []
        own_ms = values[2] if rank == RANK_STATE and len(values) > 2 else None
        if rank == RANK_TOO_LATE and values:
            own_ms = values[0]
        self._advance(
            ledger, ts_ms, closed, seen_ms=None if rank == RANK_TICK else ts_ms if own_ms is None else own_ms
        )
        if rank == RANK_STATE:
            new_state, reason = values[0], values[1]
            self._change_state(ledger, ts_ms, new_state, reason, closed)
            reported = ts_ms if own_ms is None else own_ms
            newest = ledger.state_reported_ms
            ledger.state_reported_ms = reported if newest is None else max(newest, reported)
        elif rank == RANK_COUNT:
            good, scrap, product, scrap_reason = values
            startup = ledger.startup_until_ms is not None and ts_ms < ledger.startup_until_ms
            ideal = spec.ideal_cycle_for(product)
            for window in ledger.windows.values():
                window.add_units(good, scrap, ideal, scrap_reason, startup)
        elif rank == RANK_CYCLE:
            seconds, product = values
            ideal = spec.ideal_cycle_for(product)
            for window in ledger.windows.values():
                window.add_cycle(seconds, product, ideal)
        elif rank == RANK_TOO_LATE:
            ledger.late_events += 1
            for window in ledger.windows.values():
                window.late_events += 1
        return closed

    def _classify(self, state: str | None, reason: str | None) -> tuple[LossCategory, BigLoss | None]:
        return self.plant.classify(state, reason), self.plant.big_loss(state, reason)

    def _change_state(
        self,
        ledger: ReferenceLedger,
        ts_ms: int,
        new_state: str,
        reason: str | None,
        closed: list[WindowAccumulator],
    ) -> None:
        was_stop = self._classify(ledger.state, ledger.reason)[1] is BigLoss.UNPLANNED_STOPS
        is_stop = self._classify(new_state, reason)[1] is BigLoss.UNPLANNED_STOPS
        undecided = self._micro_ms is not None and was_stop and not ledger.stop_settled
        if undecided and not is_stop:
            self._settle_stop(ledger, closed, small_stop=True)
            undecided = False
        if is_stop and not was_stop:
            ledger.stop_since_ms, ledger.stop_settled = ts_ms, self._micro_ms is None
            undecided = not ledger.stop_settled
            if undecided:
                for window in ledger.windows.values():
                    window.pending_started = True
        if new_state == "down" and ledger.state != "down":
            # A breakdown starts (a change of reason while down is the same breakdown): MTBF, MTTR.
            # Inside an undecided stop it only counts if the stop turns out not to be a small stop.
            for window in ledger.windows.values():
                if undecided:
                    window.pending_failures += 1
                else:
                    window.failures += 1
        if new_state == "running" and ledger.state in STARTUP_AFTER and self._startup_ms is not None:
            ledger.startup_until_ms = ts_ms + self._startup_ms
        if new_state != ledger.state or reason != ledger.reason:
            ledger.state, ledger.reason, ledger.state_since_ms = new_state, reason, ts_ms

    def _advance(
        self, ledger: ReferenceLedger, ts_ms: int, closed: list[WindowAccumulator], seen_ms: int | None
    ) -> None:
        """Account time up to ``ts_ms``. ``seen_ms``: when the machine sent this event (its own
        time, older than ``ts_ms`` for a too-late one); a tick of the plant's clock (None) advances
        time without making the state believed longer."""
        if ledger.cursor_ms is None:
            ledger.cursor_ms = ts_ms
            self._open_windows(ledger, ts_ms)
            for window in ledger.windows.values():
                # A machine first seen mid-window: the part before is lost coverage, not absent.
                self._book_no_data(window, window.start_ms, ts_ms)
        while ledger.cursor_ms < ts_ms:
            self._advance_segment(ledger, ts_ms, closed)
        if seen_ms is not None:
            last = ledger.last_seen_ms
            ledger.last_seen_ms = seen_ms if last is None else max(last, seen_ms)

    def _advance_segment(self, ledger: ReferenceLedger, ts_ms: int, closed: list[WindowAccumulator]) -> None:
        cursor = ledger.cursor_ms
        assert cursor is not None
        boundary = min(window.end_ms for window in ledger.windows.values())
        shift_open = "shift" in ledger.windows
        if not shift_open and self._has_shifts:
            next_shift = self.calendar.next_shift_start(cursor)
            if next_shift is not None:
                boundary = min(boundary, next_shift)
        seen = ledger.last_seen_ms if ledger.last_seen_ms is not None else cursor
        believed_until = seen + self._timeout_ms
        believed = cursor < believed_until
        if believed:
            boundary = min(boundary, believed_until)
            category, big_loss = self._classify(ledger.state, ledger.reason)
            key = loss_key(category, big_loss, ledger.state or "-", ledger.reason)
        else:
            category, big_loss, key = LossCategory.UNKNOWN, None, NO_DATA_KEY
        decide_at = None
        if (
            believed
            and big_loss is BigLoss.UNPLANNED_STOPS
            and not ledger.stop_settled
            and ledger.stop_since_ms is not None
            and self._micro_ms is not None
        ):
            decide_at = ledger.stop_since_ms + self._micro_ms
            boundary = min(boundary, decide_at)
        segment_end = min(ts_ms, boundary)
        scheduled = shift_open or not self._has_shifts
        duration = segment_end - cursor
        for window in ledger.windows.values():
            if decide_at is not None and scheduled:
                window.add_pending(duration, key)
            else:
                window.add_time(duration, category, scheduled, key)
        if decide_at is not None:
            ledger.pending_stop_ms += duration if scheduled else 0
        elif category in _OPERATING:
            ledger.run_ms += duration
        ledger.cursor_ms = segment_end
        if decide_at is not None and segment_end >= decide_at:
            self._settle_stop(ledger, closed, small_stop=False)
        self._roll_windows(ledger, segment_end, closed)

    def _settle_stop(
        self, ledger: ReferenceLedger, closed: list[WindowAccumulator], small_stop: bool
    ) -> None:
        for window in (*ledger.windows.values(), *ledger.closing):
            window.settle_stop(small_stop)
        if small_stop:
            ledger.run_ms += ledger.pending_stop_ms
        ledger.pending_stop_ms = 0
        ledger.stop_settled = True
        closed.extend(ledger.closing)
        ledger.closing = []

    def _open_windows(self, ledger: ReferenceLedger, ts_ms: int) -> None:
        for kind in WINDOW_KINDS:
            if kind not in ledger.windows:
                span = self.calendar.window_at(kind, ts_ms)
                if span is not None:
                    ledger.windows[kind] = accumulator(span)

    def _book_no_data(self, window: WindowAccumulator, start_ms: int, end_ms: int) -> None:
        for since, until, scheduled in self.calendar.scheduled_spans(start_ms, end_ms):
            window.add_time(until - since, LossCategory.UNKNOWN, scheduled, NO_DATA_KEY)

    def _roll_windows(self, ledger: ReferenceLedger, at_ms: int, closed: list[WindowAccumulator]) -> None:
        for kind in WINDOW_KINDS:
            window = ledger.windows.get(kind)
            if window is not None and window.end_ms <= at_ms:
                del ledger.windows[kind]
                if window.has_pending:
                    ledger.closing.append(window)  # waits for the undecided stop
                else:
                    closed.append(window)
        self._open_windows(ledger, at_ms)


def accumulator(span: WindowSpan) -> WindowAccumulator:
    return WindowAccumulator(kind=span.kind, shift=span.shift, start_ms=span.start_ms, end_ms=span.end_ms)
