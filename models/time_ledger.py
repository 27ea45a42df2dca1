"""One machine's time accounting as the arrays :mod:`models.time_kernel` works on.

:class:`TimeLedger` holds the kernel's arrays and what the kernel cannot: the strings behind its
codes, shift names and the cycle-time sketches. It is stored in the machine's table state as the
same fields and :class:`~models.timemodel.WindowAccumulator` dicts as before the kernel existed, so
states written by either load in both.

Loss codes stand for loss keys (``category|big loss|state/reason``), not for (state, reason) pairs:
a key says everything the kernel needs (category, whether it is an unplanned stop, which state),
so a ledger means the same under any plant configuration, and a reloaded configuration that
classifies a state differently simply books its further time under another key, as the reference
does.

:class:`~models.ledger_accounting.LedgerAccounting` runs events through the kernel on a ledger.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from models import time_kernel as k
from models.calendar import WindowSpan
from models.cycle_stats import CycleStats, stats_of
from models.plant import BigLoss, LossCategory
from models.timemodel import CATEGORIES, NO_DATA_KEY, STARTUP_AFTER, WINDOW_KINDS, WindowAccumulator, loss_key

__all__ = ["TimeLedger", "stored"]

_CATEGORY_INDEX = {category.value: index for index, category in enumerate(CATEGORIES)}
_SMALL_STOP_PREFIX = f"{LossCategory.PERFORMANCE.value}|{BigLoss.SMALL_STOPS.value}|"
_UNPLANNED = BigLoss.UNPLANNED_STOPS.value
_KIND_INDEX: dict[str, int] = {kind: index for index, kind in enumerate(WINDOW_KINDS)}
_INITIAL_ROWS = 4
_INITIAL_CODES = 8
_INITIAL_REASONS = 4
_CYCLE_BUFFER = 256
# The scalars a snapshot or a table state names, in the kernel's order.
_NAMED_SCALARS = (
    ("cursor_ms", k.S_CURSOR),
    ("last_seen_ms", k.S_LAST_SEEN),
    ("state_since_ms", k.S_STATE_SINCE),
    ("state_reported_ms", k.S_REPORTED),  # absent in states stored before it existed: None
    ("stop_since_ms", k.S_STOP_SINCE),
    ("pending_stop_ms", k.S_PENDING_STOP),
    ("startup_until_ms", k.S_STARTUP_UNTIL),
)
_ROW_INTS = (
    ("unscheduled_ms", k.R_UNSCHEDULED),
    ("good", k.R_GOOD),
    ("scrap", k.R_SCRAP),
    ("units_without_ideal", k.R_NO_IDEAL),
    ("cycles", k.R_CYCLES),
    ("late_events", k.R_LATE),
    ("failures", k.R_FAILURES),
    ("startup_scrap", k.R_STARTUP_SCRAP),
    ("micro_stops", k.R_MICRO_STOPS),
    ("pending_failures", k.R_PENDING_FAILURES),
)
_ROW_REALS = (
    ("ideal_ms", k.F_IDEAL),
    ("cycle_sum_s", k.F_CYCLE_SUM),
    ("scrap_ideal_ms", k.F_SCRAP_IDEAL),
    ("startup_scrap_ideal_ms", k.F_STARTUP_SCRAP_IDEAL),
)


def _optional(value: int) -> int | None:
    return None if value == k.NONE else int(value)


def stored(value: int | None) -> int:
    """An optional integer as the kernel stores it (:data:`~models.time_kernel.NONE` for None)."""
    return k.NONE if value is None else value


def _state_reason(key: str) -> tuple[str | None, str | None]:
    state, _, reason = key.split("|", 2)[2].partition("/")
    return (None if state == "-" else state), (None if reason == "-" else reason)


class _RowExtras:
    """What a window row keeps outside the arrays."""

    __slots__ = ("cycle_products", "shift")

    def __init__(self, shift: str | None, cycle_products: dict[str, CycleStats] | None = None) -> None:
        self.shift = shift
        self.cycle_products: dict[str, CycleStats] = cycle_products if cycle_products is not None else {}


class TimeLedger:
    """The kernel's arrays for one machine, with the strings and sketches behind them."""

    __slots__ = (
        "bound_to",
        "buffered",
        "code_rows",
        "cycles",
        "extras",
        "key_index",
        "key_states",
        "keys",
        "open_rows",
        "real_rows",
        "reason_index",
        "reasons",
        "rows",
        "scalars",
    )

    def __init__(self) -> None:
        self.scalars = np.full(k.SCALARS, k.NONE, dtype=np.int64)
        self.scalars[k.S_STOP_SETTLED] = 1
        for index in (k.S_PENDING_STOP, k.S_RUN_MS, k.S_LATE, k.S_SEQ):
            self.scalars[index] = 0
        self.scalars[k.S_CODES] = _INITIAL_CODES
        self.scalars[k.S_REASONS] = _INITIAL_REASONS
        self.rows = np.zeros((_INITIAL_ROWS, k.row_width(_INITIAL_CODES, _INITIAL_REASONS)), dtype=np.int64)
        self.real_rows = np.zeros((_INITIAL_ROWS, k.REAL_COLUMNS), dtype=np.float64)
        self.code_rows = np.zeros((_INITIAL_CODES, k.CODE_COLUMNS), dtype=np.int64)
        self.keys: list[str] = []
        self.key_states: list[tuple[str | None, str | None]] = []  # (state, reason) of each key
        self.key_index: dict[str, int] = {}
        self.reasons: list[str] = []
        self.reason_index: dict[str, int] = {}
        self.extras: list[_RowExtras | None] = [None] * _INITIAL_ROWS
        self.bound_to: object = None  # the accounting whose classification set the state's code
        self.open_rows: list[int] = []  # in hour, shift, day order
        # Cycle times by product ("-": none) with the product's ideal cycle, not yet in the open
        # windows' statistics: added in batches (one vectorised sketch update instead of one per
        # cycle and window), always before the open windows change or are read.
        self.cycles: dict[str, tuple[float | None, list[float]]] = {}
        self.buffered = 0
        self.code(NO_DATA_KEY)
        self.scalars[k.S_STATE] = self.code(loss_key(LossCategory.UNKNOWN, None, "-", None))

    def copy(self) -> TimeLedger:
        """An independent copy (sketches included) bound to the same accounting."""
        twin = copy.copy(self)
        for name in ("scalars", "rows", "real_rows", "code_rows"):
            setattr(twin, name, getattr(self, name).copy())
        twin.keys, twin.key_index, twin.key_states = (
            list(self.keys),
            dict(self.key_index),
            list(self.key_states),
        )
        twin.reasons, twin.reason_index = list(self.reasons), dict(self.reason_index)
        twin.open_rows = list(self.open_rows)
        twin.cycles = {key: (ideal, list(times)) for key, (ideal, times) in self.cycles.items()}
        twin.extras = copy.deepcopy(self.extras)
        return twin

    # -- codes ------------------------------------------------------------------------------------

    def code(self, key: str) -> int:
        """The code of a loss key, interned on first use (with its small-stop twin for a stop)."""
        found = self.key_index.get(key)
        if found is not None:
            return found
        category, big_loss, state_reason = key.split("|", 2)
        state = state_reason.partition("/")[0]
        code = len(self.keys)
        if code == self.code_rows.shape[0]:
            self._grow_codes()
        self.keys.append(key)
        self.key_states.append(_state_reason(key))
        self.key_index[key] = code
        flags = 0
        flags |= k.STATE_DOWN if state == "down" else 0
        flags |= k.STATE_RUNNING if state == "running" else 0
        flags |= k.STATE_STARTUP_AFTER if state in STARTUP_AFTER else 0
        stop = big_loss == _UNPLANNED
        self.code_rows[code] = (_CATEGORY_INDEX[category], int(stop), flags, code)
        if stop:
            self.code_rows[code, k.CODE_SMALL] = self.code(_SMALL_STOP_PREFIX + state_reason)
        return code

    def reason(self, reason: str) -> int:
        found = self.reason_index.get(reason)
        if found is not None:
            return found
        index = len(self.reasons)
        if index == int(self.scalars[k.S_REASONS]):
            self._resize(int(self.scalars[k.S_CODES]), 2 * index)
        self.reasons.append(reason)
        self.reason_index[reason] = index
        return index

    def _grow_codes(self) -> None:
        capacity = self.code_rows.shape[0]
        grown = np.zeros((2 * capacity, k.CODE_COLUMNS), dtype=np.int64)
        grown[:capacity] = self.code_rows
        self.code_rows = grown
        self._resize(2 * capacity, int(self.scalars[k.S_REASONS]))

    def _resize(self, codes: int, reasons: int) -> None:
        old_codes, old_reasons = int(self.scalars[k.S_CODES]), int(self.scalars[k.S_REASONS])
        grown = np.zeros((self.rows.shape[0], k.row_width(codes, reasons)), dtype=np.int64)
        grown[:, : k.R_LOSS] = self.rows[:, : k.R_LOSS]
        blocks = ((k.R_LOSS, k.R_LOSS, old_codes), (k.R_LOSS + old_codes, k.R_LOSS + codes, old_codes))
        for old_at, new_at, width in (*blocks, (k.R_LOSS + 2 * old_codes, k.R_LOSS + 2 * codes, old_reasons)):
            grown[:, new_at : new_at + width] = self.rows[:, old_at : old_at + width]
        self.rows = grown
        self.scalars[k.S_CODES], self.scalars[k.S_REASONS] = codes, reasons

    # -- rows -------------------------------------------------------------------------------------

    def open_row(self, span: WindowSpan) -> int:
        free = np.flatnonzero(self.rows[:, k.R_FLAG] == k.FLAG_FREE)
        if free.size == 0:
            row = self.rows.shape[0]
            self.rows = np.vstack([self.rows, np.zeros_like(self.rows)])
            self.real_rows = np.vstack([self.real_rows, np.zeros_like(self.real_rows)])
            self.extras.extend([None] * row)
        else:
            row = int(free[0])
        self.rows[row] = 0
        self.real_rows[row] = 0.0
        self.rows[row, k.R_FLAG] = k.FLAG_OPEN
        self.rows[row, k.R_KIND] = _KIND_INDEX[span.kind]
        self.rows[row, k.R_START], self.rows[row, k.R_END] = span.start_ms, span.end_ms
        self.extras[row] = _RowExtras(span.shift)
        self._index_open_rows()
        return row

    def free_row(self, row: int) -> None:
        self.rows[row, k.R_FLAG] = k.FLAG_FREE
        self.extras[row] = None
        self._index_open_rows()

    def close_row(self, row: int) -> None:
        """An ended window that waits for the undecided stop's decision."""
        self.rows[row, k.R_FLAG] = k.FLAG_CLOSING
        self.rows[row, k.R_SEQ] = self.next_seq()
        self._index_open_rows()

    def _index_open_rows(self) -> None:
        self.open_rows = self.rows_flagged(k.FLAG_OPEN)

    def buffer_cycles(self, key: str, ideal: float | None, seconds: list[float]) -> None:
        """Cycle times of the open windows, by product key ("-": none), in order."""
        buffered = self.cycles.get(key)
        if buffered is None:
            self.cycles[key] = (ideal, seconds)
        else:
            buffered[1].extend(seconds)
        self.buffered += len(seconds)
        if self.buffered >= _CYCLE_BUFFER:
            self.flush_cycles()

    def flush_cycles(self) -> None:
        """Add the buffered cycle times to the open windows' per-product statistics, in order."""
        if not self.buffered:
            return
        by_product, self.cycles, self.buffered = self.cycles, {}, 0
        for key, (ideal, times) in by_product.items():
            seconds = np.array(times, dtype=np.float64)
            bins = None
            for row in self.open_rows:
                extras = self.extras[row]
                assert extras is not None
                stats = stats_of(extras.cycle_products, key, ideal)
                bins = bins if bins is not None else stats.sketch.bins_of(seconds)
                stats.add_many(seconds, bins)

    def rows_flagged(self, flag: int) -> list[int]:
        """Rows with ``flag``: open ones in hour, shift, day order; closing ones in closing order."""
        rows = [int(row) for row in np.flatnonzero(self.rows[:, k.R_FLAG] == flag)]
        column = k.R_KIND if flag == k.FLAG_OPEN else k.R_SEQ
        return sorted(rows, key=lambda row: int(self.rows[row, column]))

    def open_kind(self, kind: str) -> int | None:
        wanted = _KIND_INDEX[kind]
        for row in self.open_rows:
            if self.rows[row, k.R_KIND] == wanted:
                return row
        return None

    def window(self, row: int) -> WindowAccumulator:
        """The row as a WindowAccumulator (its cycle sketches are shared, not copied)."""
        # Plain Python ints and floats once per row (tolist), not a numpy scalar per field: this
        # runs for every open window each time a machine's state is written (once per batch).
        ints: list[int] = self.rows[row].tolist()
        reals: list[float] = self.real_rows[row].tolist()
        extras = self.extras[row]
        assert extras is not None
        codes, reasons = int(self.scalars[k.S_CODES]), int(self.scalars[k.S_REASONS])
        window = WindowAccumulator(
            kind=WINDOW_KINDS[ints[k.R_KIND]],
            shift=extras.shift,
            start_ms=ints[k.R_START],
            end_ms=ints[k.R_END],
            category_ms=ints[k.R_CATEGORY : k.R_CATEGORY + len(CATEGORIES)],
            pending_started=bool(ints[k.R_PENDING_STARTED]),
            cycle_products=extras.cycle_products,
        )
        for name, column in _ROW_INTS:
            setattr(window, name, ints[column])
        for name, column in _ROW_REALS:
            setattr(window, name, reals[column])
        keys, loss = self.keys, k.R_LOSS
        for code, value in enumerate(ints[loss : loss + codes]):
            if value:
                window.loss_ms[keys[code]] = value
        for code, value in enumerate(ints[loss + codes : loss + 2 * codes]):
            if value:
                window.pending_ms[keys[code]] = value
        for reason, value in enumerate(ints[loss + 2 * codes : loss + 2 * codes + reasons]):
            if value:
                window.scrap_by_reason[self.reasons[reason]] = value
        return window

    def load_window(self, window: WindowAccumulator, flag: int) -> None:
        kind = WINDOW_KINDS[_KIND_INDEX[window.kind]]
        row = self.open_row(WindowSpan(kind, window.start_ms, window.end_ms, window.shift))
        self.extras[row] = _RowExtras(window.shift, window.cycle_products)
        for key in (*window.loss_ms, *window.pending_ms):
            self.code(key)
        for reason in window.scrap_by_reason:
            self.reason(reason)
        codes = int(self.scalars[k.S_CODES])
        ints, reals = self.rows[row], self.real_rows[row]
        ints[k.R_FLAG] = flag
        self._index_open_rows()
        ints[k.R_CATEGORY : k.R_CATEGORY + len(CATEGORIES)] = window.category_ms
        ints[k.R_PENDING_STARTED] = int(window.pending_started)
        for name, column in _ROW_INTS:
            ints[column] = getattr(window, name)
        for name, column in _ROW_REALS:
            reals[column] = getattr(window, name)
        for key, value in window.loss_ms.items():
            ints[k.R_LOSS + self.key_index[key]] = value
        for key, value in window.pending_ms.items():
            ints[k.R_LOSS + codes + self.key_index[key]] = value
        for reason, count in window.scrap_by_reason.items():
            ints[k.R_LOSS + 2 * codes + self.reason_index[reason]] = count
        if flag == k.FLAG_CLOSING:
            ints[k.R_SEQ] = self.next_seq()

    def next_seq(self) -> int:
        self.scalars[k.S_SEQ] += 1
        return int(self.scalars[k.S_SEQ])

    # -- what the rest of the machine state reads -------------------------------------------------

    def get(self, index: int) -> int | None:
        return _optional(int(self.scalars[index]))

    @property
    def state_reason(self) -> tuple[str | None, str | None]:
        return self.key_states[int(self.scalars[k.S_STATE])]

    def windows(self) -> dict[str, WindowAccumulator]:
        self.flush_cycles()
        return {WINDOW_KINDS[int(self.rows[row, k.R_KIND])]: self.window(row) for row in self.open_rows}

    def closing(self) -> list[WindowAccumulator]:
        return [self.window(row) for row in self.rows_flagged(k.FLAG_CLOSING)]

    def to_parts(self) -> dict[str, Any]:
        """The accounting's fields, as the machine's table state and lateness snapshots store them."""
        self.flush_cycles()
        state, reason = self.state_reason
        parts: dict[str, Any] = {name: self.get(index) for name, index in _NAMED_SCALARS}
        parts["pending_stop_ms"] = int(self.scalars[k.S_PENDING_STOP])
        parts.update(
            state=state,
            reason=reason,
            stop_settled=bool(self.scalars[k.S_STOP_SETTLED]),
            windows={kind: window.to_dict() for kind, window in self.windows().items()},
            closing=[window.to_dict() for window in self.closing()],
            run_ms=int(self.scalars[k.S_RUN_MS]),
            late_events=int(self.scalars[k.S_LATE]),
        )
        return parts

    @classmethod
    def from_parts(
        cls,
        parts: dict[str, Any],
        windows: Sequence[WindowAccumulator],
        closing: Sequence[WindowAccumulator],
    ) -> TimeLedger:
        """A ledger from stored fields (``to_parts``) and already loaded windows."""
        ledger = cls()
        for name, index in _NAMED_SCALARS:
            ledger.scalars[index] = stored(parts.get(name))
        ledger.scalars[k.S_PENDING_STOP] = parts.get("pending_stop_ms", 0)
        ledger.scalars[k.S_STOP_SETTLED] = int(parts.get("stop_settled", True))
        ledger.scalars[k.S_RUN_MS] = parts.get("run_ms", 0)
        ledger.scalars[k.S_LATE] = parts.get("late_events", 0)
        # The state's code under the classification it was last seen with; LedgerAccounting
        # re-derives it under its own plant before the next event (see bind).
        ledger.scalars[k.S_STATE] = ledger.code(
            loss_key(LossCategory.UNKNOWN, None, parts.get("state") or "-", parts.get("reason"))
        )
        for window in windows:
            ledger.load_window(window, k.FLAG_OPEN)
        for window in closing:
            ledger.load_window(window, k.FLAG_CLOSING)
        return ledger


def ledger_from_parts(parts: dict[str, Any]) -> TimeLedger:
    """A ledger from the accounting fields a table state or a lateness snapshot stores."""
    return TimeLedger.from_parts(
        parts,
        windows=[WindowAccumulator.from_dict(window) for window in parts.get("windows", {}).values()],
        closing=[WindowAccumulator.from_dict(window) for window in parts.get("closing", [])],
    )
