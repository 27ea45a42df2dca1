"""The ISO 22400 time model of one machine as numba kernels over array state.

What the kernel does, event by event, is defined by :mod:`models.accounting_reference` (the same
rules in plain Python, which the tests hold it to): the state holds from its event until the next
one and is believed for ``state_timeout_s`` after the newest telemetry; every interval is split
exactly at the open windows' ends, the next shift start and the micro-stop decision point; an
unplanned stop's time waits as *pending* until it ends (a small stop) or reaches ``micro_stop_s``
(availability loss).

What the kernel does not do is anything that needs the calendar or strings. It returns to its
wrapper (:mod:`models.time_ledger`) whenever an open window has ended or the next shift has begun,
and the wrapper closes and opens windows and calls again; that happens a few times per hour of
machine time, while events arrive many times per minute.

The state is a few arrays, so one call costs one dispatch however many windows are open:

- ``scalars`` (int64): the machine's cursor, newest event, state code, the event time of the newest
  state reported, and the stop/startup clocks;
- ``rows`` (int64, one row per window): flags, span, milliseconds by loss category, units, counts,
  then three blocks: loss milliseconds by loss code, pending stop milliseconds by loss code, and
  scrap by reason code;
- ``real_rows`` (float64): ideal times and the cycle-time sum, summed in the reference's order;
- ``codes`` (int64, one row per loss key such as ``availability|unplanned_stops|down/jam``): its
  category, whether it is an unplanned stop, flags of its state, and the code its time moves to
  when the stop turns out to be a small stop.

Integers that are "not set" hold :data:`NONE`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from models.event_rank import RANK_COUNT, RANK_CYCLE, RANK_STATE, RANK_TICK, RANK_TOO_LATE
from models.numba_config import kernel

__all__ = [
    "CODE_CATEGORY",
    "CODE_FLAGS",
    "CODE_STOP",
    "DONE",
    "FLAG_CLOSING",
    "FLAG_EMIT",
    "FLAG_FREE",
    "FLAG_OPEN",
    "NONE",
    "NO_DATA_CODE",
    "P_HAS_SHIFTS",
    "P_MICRO",
    "P_STARTUP",
    "P_TIMEOUT",
    "ROLL",
    "STATE_DOWN",
    "STATE_RUNNING",
    "STATE_STARTUP_AFTER",
    "add_time",
    "apply_events",
    "apply_one",
]

NONE = -(2**63)

# -- scalars ---------------------------------------------------------------------------------------
S_CURSOR, S_LAST_SEEN, S_STATE, S_STATE_SINCE, S_STOP_SINCE, S_STOP_SETTLED = range(6)
S_PENDING_STOP, S_STARTUP_UNTIL, S_RUN_MS, S_LATE, S_NEXT_SHIFT, S_SEQ, S_CODES, S_REASONS = range(6, 14)
S_EMIT = 14  # 1 when a settled stop released closing windows: the wrapper emits them and resets it
# The event time of the newest state reported; a too-late one takes effect at the cursor, so this can
# be older than S_STATE_SINCE, and a too-late change older than this one was superseded.
S_REPORTED = 15
SCALARS = 16

# -- params (plant settings) -----------------------------------------------------------------------
P_TIMEOUT, P_MICRO, P_STARTUP, P_HAS_SHIFTS = range(4)

# -- window rows -----------------------------------------------------------------------------------
R_FLAG, R_SEQ, R_KIND, R_START, R_END = range(5)
R_CATEGORY = 5  # five columns, in models.timemodel.CATEGORIES order
R_UNSCHEDULED, R_GOOD, R_SCRAP, R_NO_IDEAL, R_CYCLES, R_LATE, R_FAILURES = range(10, 17)
R_STARTUP_SCRAP, R_MICRO_STOPS, R_PENDING_STARTED, R_PENDING_FAILURES = range(17, 21)
R_LOSS = 21  # then loss ms by code, pending ms by code, scrap by reason
F_IDEAL, F_CYCLE_SUM, F_SCRAP_IDEAL, F_STARTUP_SCRAP_IDEAL = range(4)
REAL_COLUMNS = 4

FLAG_FREE, FLAG_OPEN, FLAG_CLOSING, FLAG_EMIT = range(4)
KIND_SHIFT = 1

# Category indexes (models.timemodel.CATEGORIES: production, performance, availability, planned, unknown).
C_PRODUCTION, C_PERFORMANCE, C_AVAILABILITY, C_PLANNED, C_UNKNOWN = range(5)

# -- codes -----------------------------------------------------------------------------------------
CODE_CATEGORY, CODE_STOP, CODE_FLAGS, CODE_SMALL = range(4)
CODE_COLUMNS = 4
STATE_DOWN, STATE_RUNNING, STATE_STARTUP_AFTER = 1, 2, 4
NO_DATA_CODE = 0

# -- what a call returns: the index of the next event to apply, and why it stopped ------------------
DONE, ROLL = 0, 1


def row_width(codes: int, reasons: int) -> int:
    return R_LOSS + 2 * codes + reasons


@kernel
def add_time(
    rows: npt.NDArray[np.int64], row: int, duration: int, category: int, scheduled: bool, code: int
) -> None:
    """Book ``duration`` ms of one state in one window (WindowAccumulator.add_time)."""
    if not scheduled and category not in (C_PRODUCTION, C_PERFORMANCE):
        rows[row, R_UNSCHEDULED] += duration
        return
    rows[row, R_CATEGORY + category] += duration
    if category != C_PRODUCTION:
        rows[row, R_LOSS + code] += duration


@kernel
def _settle_stop(
    scalars: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
    codes: npt.NDArray[np.int64],
    small_stop: bool,
) -> None:
    pending = R_LOSS + scalars[S_CODES]
    for row in range(rows.shape[0]):
        flag = rows[row, R_FLAG]
        if flag not in (FLAG_OPEN, FLAG_CLOSING):
            continue
        for code in range(codes.shape[0]):
            duration = rows[row, pending + code]
            if duration == 0:
                continue
            if small_stop:
                rows[row, R_CATEGORY + C_PERFORMANCE] += duration
                rows[row, R_LOSS + codes[code, CODE_SMALL]] += duration
            else:
                rows[row, R_CATEGORY + C_AVAILABILITY] += duration
                rows[row, R_LOSS + code] += duration
            rows[row, pending + code] = 0
        if small_stop:
            rows[row, R_MICRO_STOPS] += rows[row, R_PENDING_STARTED]
        else:
            rows[row, R_FAILURES] += rows[row, R_PENDING_FAILURES]
        rows[row, R_PENDING_STARTED] = 0
        rows[row, R_PENDING_FAILURES] = 0
        if flag == FLAG_CLOSING:
            rows[row, R_FLAG] = FLAG_EMIT  # the wrapper emits it, in closing order
            scalars[S_EMIT] = 1
    if small_stop:
        scalars[S_RUN_MS] += scalars[S_PENDING_STOP]
    scalars[S_PENDING_STOP] = 0
    scalars[S_STOP_SETTLED] = 1


@kernel
def _needs_roll(scalars: npt.NDArray[np.int64], rows: npt.NDArray[np.int64], has_shifts: bool) -> bool:
    cursor = scalars[S_CURSOR]
    shift_open = False
    for row in range(rows.shape[0]):
        if rows[row, R_FLAG] == FLAG_OPEN:
            if rows[row, R_END] <= cursor:
                return True
            shift_open = shift_open or rows[row, R_KIND] == KIND_SHIFT
    next_shift = scalars[S_NEXT_SHIFT]
    return has_shifts and not shift_open and next_shift != NONE and cursor >= next_shift


@kernel
def _advance(
    scalars: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
    codes: npt.NDArray[np.int64],
    params: npt.NDArray[np.int64],
    ts_ms: int,
    seen_ms: int,
) -> bool:
    """Account time up to ``ts_ms``; False when a window must be rolled first (call again then).

    ``seen_ms``: the event time of the telemetry the machine sent (the newest telemetry if newer);
    for a too-late event it is its own time, older than ``ts_ms`` (the cursor, where it is applied),
    so it never makes the state believed past the machine's last reading. NONE for a tick of the
    plant's clock, which advances time without making the state believed any longer.
    """
    has_shifts = params[P_HAS_SHIFTS] != 0
    micro = params[P_MICRO]
    pending = R_LOSS + scalars[S_CODES]
    while scalars[S_CURSOR] < ts_ms:
        cursor = scalars[S_CURSOR]
        boundary = ts_ms
        shift_open = False
        for row in range(rows.shape[0]):
            if rows[row, R_FLAG] == FLAG_OPEN:
                boundary = min(boundary, rows[row, R_END])
                shift_open = shift_open or rows[row, R_KIND] == KIND_SHIFT
        if not shift_open and has_shifts and scalars[S_NEXT_SHIFT] != NONE:
            boundary = min(boundary, scalars[S_NEXT_SHIFT])
        seen = scalars[S_LAST_SEEN] if scalars[S_LAST_SEEN] != NONE else cursor
        believed_until = seen + params[P_TIMEOUT]
        believed = cursor < believed_until
        decide_at = NONE
        if believed:
            boundary = min(boundary, believed_until)
            code = scalars[S_STATE]
            category = codes[code, CODE_CATEGORY]
            if (
                codes[code, CODE_STOP] != 0
                and scalars[S_STOP_SETTLED] == 0
                and scalars[S_STOP_SINCE] != NONE
                and micro >= 0
            ):
                decide_at = scalars[S_STOP_SINCE] + micro
                boundary = min(boundary, decide_at)
        else:
            code = NO_DATA_CODE
            category = C_UNKNOWN
        segment_end = min(ts_ms, boundary)
        scheduled = shift_open or not has_shifts
        duration = segment_end - cursor
        for row in range(rows.shape[0]):
            if rows[row, R_FLAG] != FLAG_OPEN:
                continue
            if decide_at != NONE and scheduled:
                rows[row, pending + code] += duration
            else:
                add_time(rows, row, duration, category, scheduled, code)
        if decide_at != NONE:
            scalars[S_PENDING_STOP] += duration if scheduled else 0
        elif category in (C_PRODUCTION, C_PERFORMANCE):
            scalars[S_RUN_MS] += duration
        scalars[S_CURSOR] = segment_end
        if decide_at != NONE and segment_end >= decide_at:
            _settle_stop(scalars, rows, codes, False)
        if _needs_roll(scalars, rows, has_shifts):
            return False
    if seen_ms != NONE:
        last = scalars[S_LAST_SEEN]
        scalars[S_LAST_SEEN] = seen_ms if last == NONE else max(last, seen_ms)
    return True


@kernel
def _change_state(
    scalars: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
    codes: npt.NDArray[np.int64],
    params: npt.NDArray[np.int64],
    ts_ms: int,
    new_code: int,
) -> None:
    old_code = scalars[S_STATE]
    micro = params[P_MICRO]
    was_stop = codes[old_code, CODE_STOP] != 0
    is_stop = codes[new_code, CODE_STOP] != 0
    undecided = micro >= 0 and was_stop and scalars[S_STOP_SETTLED] == 0
    if undecided and not is_stop:
        _settle_stop(scalars, rows, codes, True)
        undecided = False
    if is_stop and not was_stop:
        scalars[S_STOP_SINCE] = ts_ms
        scalars[S_STOP_SETTLED] = 1 if micro < 0 else 0
        undecided = micro >= 0
        if undecided:
            for row in range(rows.shape[0]):
                if rows[row, R_FLAG] == FLAG_OPEN:
                    rows[row, R_PENDING_STARTED] = 1
    new_flags = codes[new_code, CODE_FLAGS]
    old_flags = codes[old_code, CODE_FLAGS]
    if new_flags & STATE_DOWN and not old_flags & STATE_DOWN:
        column = R_PENDING_FAILURES if undecided else R_FAILURES
        for row in range(rows.shape[0]):
            if rows[row, R_FLAG] == FLAG_OPEN:
                rows[row, column] += 1
    if new_flags & STATE_RUNNING and old_flags & STATE_STARTUP_AFTER and params[P_STARTUP] >= 0:
        scalars[S_STARTUP_UNTIL] = ts_ms + params[P_STARTUP]
    if new_code != old_code:
        scalars[S_STATE] = new_code
        scalars[S_STATE_SINCE] = ts_ms


@kernel
def _add_units(
    scalars: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
    real_rows: npt.NDArray[np.float64],
    ts_ms: int,
    good: int,
    scrap: int,
    ideal_s: float,
    reason: int,
) -> None:
    until = scalars[S_STARTUP_UNTIL]
    startup = until != NONE and ts_ms < until
    produced = good + scrap
    reasons = R_LOSS + 2 * scalars[S_CODES]
    for row in range(rows.shape[0]):
        if rows[row, R_FLAG] != FLAG_OPEN:
            continue
        rows[row, R_GOOD] += good
        rows[row, R_SCRAP] += scrap
        if math.isnan(ideal_s):
            rows[row, R_NO_IDEAL] += produced
        else:
            real_rows[row, F_IDEAL] += ideal_s * 1000.0 * produced
            real_rows[row, F_SCRAP_IDEAL] += ideal_s * 1000.0 * scrap
            if startup:
                real_rows[row, F_STARTUP_SCRAP_IDEAL] += ideal_s * 1000.0 * scrap
        if scrap:
            if startup:
                rows[row, R_STARTUP_SCRAP] += scrap
            rows[row, reasons + reason] += scrap


@kernel
def apply_one(
    scalars: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
    real_rows: npt.NDArray[np.float64],
    codes: npt.NDArray[np.int64],
    params: npt.NDArray[np.int64],
    ts_ms: int,
    rank: int,
    a: int,
    b: int,
    c: int,
    x: float,
) -> int:
    """Apply one event (see :func:`apply_events` for the fields); DONE or ROLL."""
    seen_ms = ts_ms
    if rank == RANK_TICK:
        seen_ms = NONE
    elif (rank == RANK_STATE and b != NONE) or (rank == RANK_TOO_LATE and a != NONE):
        # Too late, applied at the cursor: the machine was seen at the event's own time. (A
        # too-late count stored before that time was kept has none: seen at the cursor, as then.)
        seen_ms = b if rank == RANK_STATE else a
    if not _advance(scalars, rows, codes, params, ts_ms, seen_ms):
        return ROLL
    if rank == RANK_STATE:  # a = the loss code of the new state and reason, b = its own time if too late
        _change_state(scalars, rows, codes, params, ts_ms, a)
        reported = ts_ms if b == NONE else b
        newest = scalars[S_REPORTED]
        scalars[S_REPORTED] = reported if newest == NONE else max(newest, reported)
    elif rank == RANK_COUNT:  # a = good, b = scrap, c = scrap reason, x = ideal cycle (NaN: none)
        _add_units(scalars, rows, real_rows, ts_ms, a, b, x, c)
    elif rank == RANK_CYCLE:  # x = seconds
        for row in range(rows.shape[0]):
            if rows[row, R_FLAG] == FLAG_OPEN:
                rows[row, R_CYCLES] += 1
                real_rows[row, F_CYCLE_SUM] += x
    elif rank == RANK_TOO_LATE:  # counted only; a = its own time (NONE: unknown)
        scalars[S_LATE] += 1
        for row in range(rows.shape[0]):
            if rows[row, R_FLAG] == FLAG_OPEN:
                rows[row, R_LATE] += 1
    return DONE


@kernel
def apply_events(
    scalars: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
    real_rows: npt.NDArray[np.float64],
    codes: npt.NDArray[np.int64],
    params: npt.NDArray[np.int64],
    ts_ms: npt.NDArray[np.int64],
    rank: npt.NDArray[np.int64],
    a: npt.NDArray[np.int64],
    b: npt.NDArray[np.int64],
    c: npt.NDArray[np.int64],
    x: npt.NDArray[np.float64],
    start: int,
) -> int:
    """Apply events ``start..`` in order; return ``index * 2 + status``.

    ``status`` is DONE (every event applied; ``index`` is their number) or ROLL (event ``index``
    is waiting for the wrapper to roll a window; call again from it). Ranks are those of
    :mod:`models.lateness`; a heartbeat (3) only advances time, and a tick (5) advances it without
    being telemetry of the machine.
    """
    for index in range(start, ts_ms.shape[0]):
        status = apply_one(
            scalars, rows, real_rows, codes, params, ts_ms[index], rank[index], a[index], b[index],
            c[index], x[index],
        )  # fmt: skip
        if status == ROLL:
            return index * 2 + ROLL
    done: int = ts_ms.shape[0] * 2 + DONE
    return done
