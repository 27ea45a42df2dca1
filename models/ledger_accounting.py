"""Running time-model events through :mod:`models.time_kernel` on a :class:`~models.time_ledger.TimeLedger`.

:class:`LedgerAccounting` calls the kernel, and in between rolls windows with the plant calendar,
emits closed windows in the reference's order (:mod:`models.accounting_reference`) and feeds cycle
times into the per-product sketches. ``apply`` takes one event (the worker's path); ``apply_many``
and ``apply_encoded`` take many, with one kernel run between window rolls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from models import time_kernel as k
from models.calendar import PlantCalendar
from models.event_rank import RANK_COUNT, RANK_CYCLE, RANK_HEARTBEAT, RANK_STATE, RANK_TOO_LATE
from models.plant import MachineSpec, PlantConfig
from models.time_ledger import TimeLedger, stored
from models.timemodel import WINDOW_KINDS, WindowAccumulator, loss_key

__all__ = ["EncodedEvents", "LedgerAccounting"]


@dataclass(frozen=True, slots=True)
class EncodedEvents:
    """Events as the kernel's columns (see :func:`models.time_kernel.apply_events`)."""

    ts_ms: npt.NDArray[np.int64]
    ranks: npt.NDArray[np.int64]
    fields: npt.NDArray[np.int64]  # (3, n): code or good, scrap, scrap reason
    reals: npt.NDArray[np.float64]  # ideal cycle of a count (NaN: none), seconds of a cycle
    # Per product key ("-": none): its ideal cycle and the indexes of its cycle events, ascending.
    cycles: dict[str, tuple[float | None, npt.NDArray[np.int64]]]


class LedgerAccounting:
    """Applies time-model events in order to a :class:`TimeLedger` through the numba kernel."""

    def __init__(self, plant: PlantConfig, calendar: PlantCalendar) -> None:
        self.plant = plant
        self.calendar = calendar
        self._has_shifts = bool(calendar.shifts)  # a site may have its own shifts
        self.params = np.array(
            [
                int(plant.state_timeout_s * 1000),
                -1 if plant.micro_stop_s is None else int(plant.micro_stop_s * 1000),
                -1 if plant.startup_s is None else int(plant.startup_s * 1000),
                int(self._has_shifts),
            ],
            dtype=np.int64,
        )
        self._keys: dict[tuple[str | None, str | None], str] = {}

    # -- codes ------------------------------------------------------------------------------------

    def key_of(self, state: str | None, reason: str | None) -> str:
        key = self._keys.get((state, reason))
        if key is None:
            category, big_loss = self.plant.classify(state, reason), self.plant.big_loss(state, reason)
            key = self._keys[(state, reason)] = loss_key(category, big_loss, state or "-", reason)
        return key

    def bind(self, ledger: TimeLedger) -> None:
        """Classify the ledger's current state under this plant (once per ledger and plant)."""
        if ledger.bound_to is not self:
            ledger.scalars[k.S_STATE] = ledger.code(self.key_of(*ledger.state_reason))
            ledger.bound_to = self

    # -- events -----------------------------------------------------------------------------------

    def apply(
        self, ledger: TimeLedger, spec: MachineSpec, ts_ms: int, rank: int, values: Sequence[Any]
    ) -> list[WindowAccumulator]:
        """Apply one event not older than the ledger's cursor; return the windows it closed."""
        if ledger.bound_to is not self:  # bind's own test, inlined: this runs for every event
            self.bind(ledger)
        closed: list[WindowAccumulator] = []
        scalars = ledger.scalars
        if scalars[k.S_CURSOR] == k.NONE:
            self._first_event(ledger, ts_ms)
        a, b, c, x = self._fields(ledger, spec, rank, values)
        while True:
            status = k.apply_one(
                scalars, ledger.rows, ledger.real_rows, ledger.code_rows, self.params, ts_ms, rank, a, b, c, x
            )
            if scalars[k.S_EMIT]:
                self._emit_settled(ledger, closed)
            if status == k.DONE:
                break
            self._roll(ledger, closed)
        if rank == RANK_CYCLE:
            self._buffer_cycle(ledger, spec, x, values[1])
        return closed

    def apply_many(
        self,
        ledger: TimeLedger,
        spec: MachineSpec,
        events: Sequence[tuple[int, int, Sequence[Any]]],
    ) -> list[WindowAccumulator]:
        """Apply (ts_ms, rank, values) events in order with one kernel run between window rolls."""
        return self.apply_encoded(ledger, spec, self.encode(ledger, spec, events))

    def encode(
        self, ledger: TimeLedger, spec: MachineSpec, events: Sequence[tuple[int, int, Sequence[Any]]]
    ) -> EncodedEvents:
        """The events as the kernel's columns, with codes interned in ``ledger``."""
        self.bind(ledger)
        count = len(events)
        encoded = EncodedEvents(
            ts_ms=np.fromiter((event[0] for event in events), dtype=np.int64, count=count),
            ranks=np.fromiter((event[1] for event in events), dtype=np.int64, count=count),
            fields=np.zeros((3, count), dtype=np.int64),
            reals=np.zeros(count, dtype=np.float64),
            cycles={},
        )
        cycle_events: dict[str, list[int]] = {}
        fields, reals = encoded.fields, encoded.reals
        for index, (_, rank, values) in enumerate(events):
            if rank != RANK_HEARTBEAT:
                fields[0, index], fields[1, index], fields[2, index], reals[index] = self._fields(
                    ledger, spec, rank, values
                )
            if rank == RANK_CYCLE:
                cycle_events.setdefault(values[1] or "-", []).append(index)
        for key, indexes in cycle_events.items():
            ideal = spec.ideal_cycle_for(None if key == "-" else key)
            encoded.cycles[key] = (ideal, np.array(indexes, dtype=np.int64))
        return encoded

    def apply_encoded(
        self, ledger: TimeLedger, spec: MachineSpec, encoded: EncodedEvents
    ) -> list[WindowAccumulator]:
        """Apply events :meth:`encode` made for this ledger (or an identical copy of it)."""
        self.bind(ledger)
        closed: list[WindowAccumulator] = []
        if encoded.ts_ms.shape[0] == 0:
            return closed
        if ledger.scalars[k.S_CURSOR] == k.NONE:
            self._first_event(ledger, int(encoded.ts_ms[0]))
        start = 0
        fields = encoded.fields
        while True:
            packed = k.apply_events(
                ledger.scalars, ledger.rows, ledger.real_rows, ledger.code_rows, self.params,
                encoded.ts_ms, encoded.ranks, fields[0], fields[1], fields[2], encoded.reals, start,
            )  # fmt: skip
            index, status = divmod(int(packed), 2)
            for key, (ideal, at) in encoded.cycles.items():
                done = at[np.searchsorted(at, start) : np.searchsorted(at, index)]
                if done.size:
                    ledger.buffer_cycles(key, ideal, encoded.reals[done].tolist())
            if ledger.scalars[k.S_EMIT]:
                self._emit_settled(ledger, closed)
            if status == k.DONE:
                return closed
            self._roll(ledger, closed)
            start = index

    def _fields(
        self, ledger: TimeLedger, spec: MachineSpec, rank: int, values: Sequence[Any]
    ) -> tuple[int, int, int, float]:
        if rank == RANK_STATE:
            # A third value: the event's own time, when it is applied at the cursor as too late.
            reported = values[2] if len(values) > 2 else k.NONE
            return ledger.code(self.key_of(values[0], values[1])), reported, 0, 0.0
        if rank == RANK_COUNT:
            good, scrap, product, scrap_reason = values
            ideal = spec.ideal_cycle_for(product)
            reason = ledger.reason(scrap_reason or "unspecified") if scrap else 0
            return good, scrap, reason, math.nan if ideal is None else ideal
        if rank == RANK_CYCLE:
            seconds = float(values[0])
            if not (math.isfinite(seconds) and seconds > 0):
                raise ValueError("cycle seconds must be positive and finite")
            return 0, 0, 0, seconds
        if rank == RANK_TOO_LATE:
            return (values[0] if values else k.NONE), 0, 0, 0.0  # its own time, if known
        return 0, 0, 0, 0.0

    @staticmethod
    def _buffer_cycle(ledger: TimeLedger, spec: MachineSpec, seconds: float, product: str | None) -> None:
        ledger.buffer_cycles(product or "-", spec.ideal_cycle_for(product), [seconds])

    # -- windows ----------------------------------------------------------------------------------

    def _first_event(self, ledger: TimeLedger, ts_ms: int) -> None:
        ledger.scalars[k.S_CURSOR] = ts_ms
        self._open_windows(ledger, ts_ms)
        for row in ledger.open_rows:
            # A machine first seen mid-window: the part before is lost coverage, not absent.
            self._book_no_data(ledger, row, int(ledger.rows[row, k.R_START]), ts_ms)

    def _book_no_data(self, ledger: TimeLedger, row: int, start_ms: int, end_ms: int) -> None:
        for since, until, scheduled in self.calendar.scheduled_spans(start_ms, end_ms):
            k.add_time(ledger.rows, row, until - since, k.C_UNKNOWN, scheduled, k.NO_DATA_CODE)

    def _open_windows(self, ledger: TimeLedger, at_ms: int) -> None:
        for kind in WINDOW_KINDS:
            if ledger.open_kind(kind) is None:
                span = self.calendar.window_at(kind, at_ms)
                if span is not None:
                    ledger.open_row(span)
        shift_open = ledger.open_kind("shift") is not None
        next_shift = None
        if self._has_shifts and not shift_open:
            next_shift = self.calendar.next_shift_start(at_ms)
        ledger.scalars[k.S_NEXT_SHIFT] = stored(next_shift)

    def _roll(self, ledger: TimeLedger, closed: list[WindowAccumulator]) -> None:
        at_ms = int(ledger.scalars[k.S_CURSOR])
        ledger.flush_cycles()
        for row in list(ledger.open_rows):
            if ledger.rows[row, k.R_END] > at_ms:
                continue
            window = ledger.window(row)
            if window.has_pending:
                ledger.close_row(row)  # waits for the undecided stop
            else:
                closed.append(window)
                ledger.free_row(row)
        self._open_windows(ledger, at_ms)

    @staticmethod
    def _emit_settled(ledger: TimeLedger, closed: list[WindowAccumulator]) -> None:
        ledger.scalars[k.S_EMIT] = 0
        for row in ledger.rows_flagged(k.FLAG_EMIT):
            closed.append(ledger.window(row))
            ledger.free_row(row)
