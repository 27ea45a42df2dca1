"""Streaming statistics of one signal, updated a batch of readings at a time.

The state is a float64 vector of :data:`STATE_SIZE` entries (80 bytes; about 200 bytes as JSON), so
it lives inside a machine's table state and serialises with :func:`to_list`/:func:`from_list`.
Layout, by index constant:

=============  ==========================================================  ==============
index          meaning                                                     empty state
=============  ==========================================================  ==============
``COUNT``      readings seen (an integer held as float64; exact to 2^53)   0
``MEAN``       arithmetic mean                                             0
``M2``         sum of squared deviations from the mean                     0
``MIN``        smallest value                                              NaN
``MAX``        largest value                                               NaN
``LAST``       value of the newest reading (largest timestamp)             NaN
``LAST_TS``    epoch ms of the newest reading                              NaN
``EW_MEAN``    exponentially weighted mean                                 NaN
``EW_VAR``     exponentially weighted variance                             NaN
``SUM``        sum of values                                               0
=============  ==========================================================  ==============

NaN marks "no reading yet" rather than a sentinel such as +inf, so an empty state reads as empty
everywhere (summaries give ``None``, JSON gives ``null``).

COUNT, MEAN and M2 are the running moments (variance = M2 / (COUNT - 1)); each batch's own mean and
squared deviations are folded in with the pairwise formula of Chan, Golub and LeVeque, which is also
what :func:`merge` uses, so splitting a stream into batches or partitions changes no result beyond
rounding.

The exponentially weighted fields follow the incremental form (Finch, 2009):
``d = x - m; m = (1 - a)*m + a*x; v = (1 - a) * (v + a*d*d)``, seeded with the first reading (``m = x``,
``v = 0``). ``alpha`` is the weight of the newest reading; :func:`alpha_from_half_life` converts a
half-life counted in readings. ``alpha`` is not stored in the state: the caller passes the same one
on every update (linepulse's engine passes :data:`DEFAULT_ALPHA`).

>>> import numpy as np
>>> state = new_state()
>>> update(state, np.array([1_000, 2_000, 3_000]), np.array([1.0, 2.0, 6.0]), alpha=0.5)
>>> s = summarize(state)
>>> (s.count, s.mean, s.std, s.min, s.max, s.last, s.last_ts_ms)
(3, 3.0, 2.6457513110645907, 1.0, 6.0, 6.0, 3000)
>>> (s.ew_mean, round(s.ew_std, 6))
(3.75, 2.277608)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numba
import numpy as np

from models.arrays import FloatArray, IntArray
from models.finite import FLUSH_EVERY, all_finite, flushed
from models.json_floats import decode_number, encode_number
from models.numba_config import SealedKernel, inline_kernel, kernel

__all__ = [
    "COUNT",
    "DEFAULT_ALPHA",
    "DEFAULT_HALF_LIFE_READINGS",
    "EW_MEAN",
    "EW_VAR",
    "LAST",
    "LAST_TS",
    "M2",
    "MAX",
    "MEAN",
    "MIN",
    "STATE_SIZE",
    "SUM",
    "SignalSummary",
    "alpha_from_half_life",
    "from_list",
    "merge",
    "new_state",
    "summarize",
    "to_list",
    "update",
    "update_runs",
    "update_runs_side_by_side",
]

COUNT: Final = 0
MEAN: Final = 1
M2: Final = 2
MIN: Final = 3
MAX: Final = 4
LAST: Final = 5
LAST_TS: Final = 6
EW_MEAN: Final = 7
EW_VAR: Final = 8
SUM: Final = 9
STATE_SIZE: Final = 10


def alpha_from_half_life(readings: float) -> float:
    """The EW weight under which a reading's influence halves after ``readings`` newer readings."""
    if not (math.isfinite(readings) and readings > 0):
        raise ValueError(f"readings: half-life must be a positive finite number, got {readings!r}")
    return 1.0 - math.pow(0.5, 1.0 / readings)


# About 1 s of history at 50 Hz: long enough to smooth noise, short enough to follow a drift.
DEFAULT_HALF_LIFE_READINGS: Final = 50.0
DEFAULT_ALPHA: Final = alpha_from_half_life(DEFAULT_HALF_LIFE_READINGS)


@dataclass(frozen=True, slots=True)
class SignalSummary:
    """A readable snapshot of a state; ``None`` where the statistic is undefined for so few readings."""

    count: int
    mean: float | None
    std: float | None  # sample standard deviation (ddof=1); None below 2 readings
    min: float | None
    max: float | None
    last: float | None
    last_ts_ms: int | None
    ew_mean: float | None
    ew_std: float | None


def new_state() -> FloatArray:
    """The state of a signal that has seen no reading."""
    state = np.zeros(STATE_SIZE, dtype=np.float64)
    state[[MIN, MAX, LAST, LAST_TS, EW_MEAN, EW_VAR]] = np.nan
    return state


@inline_kernel
def _newest(ts_ms: IntArray, start: int, stop: int) -> tuple[int, int]:
    """The newest reading of ``[start, stop)`` (at least one) and its timestamp, in integer
    compares; ">=" makes the later of equal timestamps win (so in an ordered run, the last)."""
    newest = start
    newest_ts = ts_ms[start]
    for i in range(start + 1, stop):
        if ts_ms[i] >= newest_ts:
            newest = i
            newest_ts = ts_ms[i]
    return newest, newest_ts


@inline_kernel
def _newest_of_run(ts_ms: IntArray, k: int, start: int, stop: int, ordered: bool) -> tuple[int, int]:
    """:func:`_newest` of run ``k``, ``[start, stop)``; ``ordered``: the runs are oldest first and
    ``ts_ms`` holds each run's last timestamp (one per run), so its newest reading is its last."""
    if ordered:
        return stop - 1, ts_ms[k]
    return _newest(ts_ms, start, stop)


@kernel
def _fold(
    state: FloatArray, values: FloatArray, start: int, stop: int, alpha: float, newest: int, newest_ts: int
) -> None:
    """Fold the finite readings ``[start, stop)`` (at least one) into ``state``; ``newest`` is the
    index of the newest reading (:func:`_newest`), whose timestamp is ``newest_ts``.

    Three short passes rather than one Welford pass: Welford puts a division on the loop-carried
    chain (~6 ns/reading here); the batch's own mean and squared deviations (the two-pass
    algorithm, also the more accurate one) merged into the state with Chan's formula cost ~3 ns.
    """
    n = stop - start
    batch_sum = 0.0
    for i in range(start, stop):
        batch_sum += values[i]
    # Squared deviations about the batch mean, extremes and the EW recurrences.
    count = state[COUNT]
    lo = state[MIN]
    hi = state[MAX]
    ew_mean = state[EW_MEAN]
    ew_var = state[EW_VAR]
    if count == 0.0:
        # Seed the NaN fields with the first reading, which the loop then applies as a no-op.
        lo = values[start]
        hi = values[start]
        ew_mean = values[start]
        ew_var = 0.0
    batch_mean = batch_sum / n
    batch_m2 = 0.0
    keep = 1.0 - alpha
    # Readings of exactly 0 (a motor's current while it stands) would leave the EW pair stuck at a
    # subnormal, ~100 ns a reading instead of ~5 on Intel (models.finite: why).
    for block in range(start, stop, FLUSH_EVERY):
        for i in range(block, min(block + FLUSH_EVERY, stop)):
            x = values[i]
            dev = x - batch_mean
            batch_m2 += dev * dev
            lo = min(lo, x)
            hi = max(hi, x)
            d = x - ew_mean
            ew_mean = keep * ew_mean + alpha * x
            ew_var = keep * (ew_var + alpha * d * d)
        ew_mean = flushed(ew_mean)
        ew_var = flushed(ew_var)
    # Chan, Golub and LeVeque: combine (count, mean, M2) with the batch's.
    total = count + n
    delta = batch_mean - state[MEAN]
    state[MEAN] += delta * (n / total)
    state[M2] += batch_m2 + delta * delta * (count * n / total)
    state[COUNT] = total
    state[MIN] = lo
    state[MAX] = hi
    state[EW_MEAN] = ew_mean
    state[EW_VAR] = ew_var
    state[SUM] += batch_sum
    newest_ts_float = float(newest_ts)
    # NaN LAST_TS (empty state) compares false, hence "not <".
    if not newest_ts_float < state[LAST_TS]:
        state[LAST_TS] = newest_ts_float
        state[LAST] = values[newest]


@kernel
def _first_non_finite(values: FloatArray) -> int:
    """The index of the first non-finite value, or -1.

    The usual answer (-1) from :func:`models.finite.all_finite` (vectorised, ~0.1 ns a reading);
    the scan with an exit, which stays scalar (~0.7 ns a reading), only when one is there.
    """
    if all_finite(values):
        return -1
    for i in range(values.shape[0]):
        if not math.isfinite(values[i]):
            return i
    return -1


# The update kernel's own checks (what numba's dispatcher cannot see in the types): negative codes.
_BAD_STATE_SIZE: Final = -2
_BAD_LENGTHS: Final = -3


@kernel
def _update_kernel(state: FloatArray, ts_ms: IntArray, values: FloatArray, alpha: float) -> int:
    """Fold readings into ``state``; returns -1, the first non-finite value's index, or
    :data:`_BAD_STATE_SIZE` / :data:`_BAD_LENGTHS` (state untouched but for -1)."""
    if state.shape[0] != STATE_SIZE:
        return _BAD_STATE_SIZE
    n = values.shape[0]
    if ts_ms.shape[0] != n:
        return _BAD_LENGTHS
    if n == 0:
        return -1
    # Reject a batch with a non-finite value before touching the state (a NaN would poison the
    # mean for good).
    bad = _first_non_finite(values)
    if bad >= 0:
        return bad
    newest, newest_ts = _newest(ts_ms, 0, n)
    _fold(state, values, 0, n, alpha, newest, newest_ts)
    return -1


@kernel
def _update_runs_kernel(
    state: FloatArray, ts_ms: IntArray, values: FloatArray, ends: IntArray, ordered: bool, alpha: float
) -> int:
    """:func:`_update_kernel` once per run ``[ends[k-1], ends[k])``, in one call; -1, the first
    non-finite index, or -2 when ``ends`` decreases somewhere (state untouched either way).
    ``ordered``: ``ts_ms`` is each run's last timestamp (:func:`_newest_of_run`)."""
    for k in range(1, ends.shape[0]):
        if ends[k] < ends[k - 1]:
            return -2
    bad = _first_non_finite(values)
    if bad >= 0:
        return bad
    start = 0
    for k in range(ends.shape[0]):
        stop = ends[k]
        if stop > start:
            newest, newest_ts = _newest_of_run(ts_ms, k, start, stop, ordered)
            _fold(state, values, start, stop, alpha, newest, newest_ts)
        start = stop
    return -1


@kernel
def _fold_pair(
    state_a: FloatArray,
    values_a: FloatArray,
    newest_a: int,
    newest_ts_a: int,
    state_b: FloatArray,
    values_b: FloatArray,
    newest_b: int,
    newest_ts_b: int,
    start: int,
    stop: int,
    alpha: float,
) -> None:
    """:func:`_fold` of rows ``[start, stop)`` into two states at once, each bit for bit as alone.

    A signal's fold is latency-bound: each reading waits for the previous one's EW mean and
    variance (a multiply and an add each, ~3 ns a reading here). Two signals' recurrences are
    independent, so stepping them in one loop lets the core run both chains side by side (each
    stream's operations stay in its order): a frame's five signals as two pairs and one alone cost
    ~3.9 ns a reading instead of ~5.1 one by one (runs of 7 x 1,000 readings in the cache).
    """
    n = stop - start
    sum_a = 0.0
    sum_b = 0.0
    for i in range(start, stop):
        sum_a += values_a[i]
        sum_b += values_b[i]
    lo_a, hi_a, ew_mean_a, ew_var_a = _seed(state_a, values_a[start])
    lo_b, hi_b, ew_mean_b, ew_var_b = _seed(state_b, values_b[start])
    mean_a = sum_a / n
    mean_b = sum_b / n
    m2_a = 0.0
    m2_b = 0.0
    keep = 1.0 - alpha
    for block in range(start, stop, FLUSH_EVERY):
        for i in range(block, min(block + FLUSH_EVERY, stop)):
            x = values_a[i]
            dev = x - mean_a
            m2_a += dev * dev
            lo_a = min(lo_a, x)
            hi_a = max(hi_a, x)
            d = x - ew_mean_a
            ew_mean_a = keep * ew_mean_a + alpha * x
            ew_var_a = keep * (ew_var_a + alpha * d * d)
            y = values_b[i]
            dev_b = y - mean_b
            m2_b += dev_b * dev_b
            lo_b = min(lo_b, y)
            hi_b = max(hi_b, y)
            e = y - ew_mean_b
            ew_mean_b = keep * ew_mean_b + alpha * y
            ew_var_b = keep * (ew_var_b + alpha * e * e)
        ew_mean_a = flushed(ew_mean_a)
        ew_var_a = flushed(ew_var_a)
        ew_mean_b = flushed(ew_mean_b)
        ew_var_b = flushed(ew_var_b)
    _merge_batch(
        state_a, n, sum_a, mean_a, m2_a, lo_a, hi_a, ew_mean_a, ew_var_a, newest_ts_a, values_a[newest_a]
    )
    _merge_batch(
        state_b, n, sum_b, mean_b, m2_b, lo_b, hi_b, ew_mean_b, ew_var_b, newest_ts_b, values_b[newest_b]
    )


@inline_kernel
def _seed(state: FloatArray, first: float) -> tuple[float, float, float, float]:
    """(min, max, EW mean, EW variance) to fold from: the state's, or the first reading's when it is
    empty (its NaN fields seeded so that the loop applies that reading as a no-op), as in :func:`_fold`."""
    if state[COUNT] == 0.0:
        return first, first, first, 0.0
    return state[MIN], state[MAX], state[EW_MEAN], state[EW_VAR]


@inline_kernel
def _merge_batch(
    state: FloatArray,
    n: int,
    batch_sum: float,
    batch_mean: float,
    batch_m2: float,
    lo: float,
    hi: float,
    ew_mean: float,
    ew_var: float,
    newest_ts: int,
    newest_value: float,
) -> None:
    """The end of :func:`_fold`: the batch's moments merged into the state (Chan, Golub and LeVeque)."""
    count = state[COUNT]
    total = count + n
    delta = batch_mean - state[MEAN]
    state[MEAN] += delta * (n / total)
    state[M2] += batch_m2 + delta * delta * (count * n / total)
    state[COUNT] = total
    state[MIN] = lo
    state[MAX] = hi
    state[EW_MEAN] = ew_mean
    state[EW_VAR] = ew_var
    state[SUM] += batch_sum
    newest_ts_float = float(newest_ts)
    if not newest_ts_float < state[LAST_TS]:
        state[LAST_TS] = newest_ts_float
        state[LAST] = newest_value


@kernel
def _update_runs_pair_kernel(
    state_a: FloatArray,
    ts_a: IntArray,
    values_a: FloatArray,
    state_b: FloatArray,
    ts_b: IntArray,
    values_b: FloatArray,
    ends: IntArray,
    ordered: bool,
    alpha: float,
) -> int:
    """:func:`_update_runs_kernel` for two signals with the same runs, in one pass: -1, -2 when
    ``ends`` decreases, else the first non-finite index (of ``values_a``, then of ``values_b``,
    plus ``values_a``'s length); neither state is touched unless -1."""
    for k in range(1, ends.shape[0]):
        if ends[k] < ends[k - 1]:
            return -2
    bad = _first_non_finite(values_a)
    if bad >= 0:
        return bad
    bad = _first_non_finite(values_b)
    if bad >= 0:
        return int(values_a.shape[0]) + bad
    start = 0
    for k in range(ends.shape[0]):
        stop = ends[k]
        if stop > start:
            newest_a, newest_ts_a = _newest_of_run(ts_a, k, start, stop, ordered)
            newest_b, newest_ts_b = _newest_of_run(ts_b, k, start, stop, ordered)
            _fold_pair(
                state_a,
                values_a,
                newest_a,
                newest_ts_a,
                state_b,
                values_b,
                newest_b,
                newest_ts_b,
                start,
                stop,
                alpha,
            )
        start = stop
    return -1


@kernel
def _fold_triple(
    state_a: FloatArray,
    values_a: FloatArray,
    newest_a: int,
    newest_ts_a: int,
    state_b: FloatArray,
    values_b: FloatArray,
    newest_b: int,
    newest_ts_b: int,
    state_c: FloatArray,
    values_c: FloatArray,
    newest_c: int,
    newest_ts_c: int,
    start: int,
    stop: int,
    alpha: float,
) -> None:
    """:func:`_fold_pair` for three signals: a third chain beside the two (~3.4 ns a reading of a
    frame's five signals as a triple and a pair, against ~3.9 as two pairs and one alone)."""
    n = stop - start
    sum_a = 0.0
    sum_b = 0.0
    sum_c = 0.0
    for i in range(start, stop):
        sum_a += values_a[i]
        sum_b += values_b[i]
        sum_c += values_c[i]
    lo_a, hi_a, ew_mean_a, ew_var_a = _seed(state_a, values_a[start])
    lo_b, hi_b, ew_mean_b, ew_var_b = _seed(state_b, values_b[start])
    lo_c, hi_c, ew_mean_c, ew_var_c = _seed(state_c, values_c[start])
    mean_a = sum_a / n
    mean_b = sum_b / n
    mean_c = sum_c / n
    m2_a = 0.0
    m2_b = 0.0
    m2_c = 0.0
    keep = 1.0 - alpha
    for block in range(start, stop, FLUSH_EVERY):
        for i in range(block, min(block + FLUSH_EVERY, stop)):
            x = values_a[i]
            dev = x - mean_a
            m2_a += dev * dev
            lo_a = min(lo_a, x)
            hi_a = max(hi_a, x)
            d = x - ew_mean_a
            ew_mean_a = keep * ew_mean_a + alpha * x
            ew_var_a = keep * (ew_var_a + alpha * d * d)
            y = values_b[i]
            dev_b = y - mean_b
            m2_b += dev_b * dev_b
            lo_b = min(lo_b, y)
            hi_b = max(hi_b, y)
            e = y - ew_mean_b
            ew_mean_b = keep * ew_mean_b + alpha * y
            ew_var_b = keep * (ew_var_b + alpha * e * e)
            z = values_c[i]
            dev_c = z - mean_c
            m2_c += dev_c * dev_c
            lo_c = min(lo_c, z)
            hi_c = max(hi_c, z)
            f = z - ew_mean_c
            ew_mean_c = keep * ew_mean_c + alpha * z
            ew_var_c = keep * (ew_var_c + alpha * f * f)
        ew_mean_a = flushed(ew_mean_a)
        ew_var_a = flushed(ew_var_a)
        ew_mean_b = flushed(ew_mean_b)
        ew_var_b = flushed(ew_var_b)
        ew_mean_c = flushed(ew_mean_c)
        ew_var_c = flushed(ew_var_c)
    _merge_batch(
        state_a, n, sum_a, mean_a, m2_a, lo_a, hi_a, ew_mean_a, ew_var_a, newest_ts_a, values_a[newest_a]
    )
    _merge_batch(
        state_b, n, sum_b, mean_b, m2_b, lo_b, hi_b, ew_mean_b, ew_var_b, newest_ts_b, values_b[newest_b]
    )
    _merge_batch(
        state_c, n, sum_c, mean_c, m2_c, lo_c, hi_c, ew_mean_c, ew_var_c, newest_ts_c, values_c[newest_c]
    )


@kernel
def _update_runs_triple_kernel(
    state_a: FloatArray,
    ts_a: IntArray,
    values_a: FloatArray,
    state_b: FloatArray,
    ts_b: IntArray,
    values_b: FloatArray,
    state_c: FloatArray,
    ts_c: IntArray,
    values_c: FloatArray,
    ends: IntArray,
    ordered: bool,
    alpha: float,
) -> int:
    """:func:`_update_runs_pair_kernel` for three signals (a non-finite value of ``values_c`` is
    reported at twice the length plus its index)."""
    for k in range(1, ends.shape[0]):
        if ends[k] < ends[k - 1]:
            return -2
    n = int(values_a.shape[0])
    bad = _first_non_finite(values_a)
    if bad >= 0:
        return bad
    bad = _first_non_finite(values_b)
    if bad >= 0:
        return n + bad
    bad = _first_non_finite(values_c)
    if bad >= 0:
        return 2 * n + bad
    start = 0
    for k in range(ends.shape[0]):
        stop = ends[k]
        if stop > start:
            newest_a, newest_ts_a = _newest_of_run(ts_a, k, start, stop, ordered)
            newest_b, newest_ts_b = _newest_of_run(ts_b, k, start, stop, ordered)
            newest_c, newest_ts_c = _newest_of_run(ts_c, k, start, stop, ordered)
            _fold_triple(
                state_a,
                values_a,
                newest_a,
                newest_ts_a,
                state_b,
                values_b,
                newest_b,
                newest_ts_b,
                state_c,
                values_c,
                newest_c,
                newest_ts_c,
                start,
                stop,
                alpha,
            )
        start = stop
    return -1


_F8: Final = np.dtype(np.float64)
_I8: Final = np.dtype(np.int64)


def _check_state(state: object, name: str, *, writable: bool) -> FloatArray:
    if not isinstance(state, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(state).__name__}")
    if state.dtype != np.float64 or state.shape != (STATE_SIZE,):
        raise ValueError(
            f"{name}: expected float64 of shape ({STATE_SIZE},), got {state.dtype} {state.shape}"
        )
    if not state.flags.c_contiguous:
        raise ValueError(f"{name}: must be C-contiguous")
    if writable and not state.flags.writeable:
        raise ValueError(f"{name}: must be writable (it is updated in place)")
    return state


def _check_column(array: object, name: str, dtype: np.dtype[Any]) -> None:
    # Fast path first: update() runs once per signal and message, and these checks cost as much as
    # the kernel on a small batch. The dtype identity test holds for numpy's native dtypes.
    if type(array) is np.ndarray and array.dtype is dtype and array.ndim == 1 and array.flags.c_contiguous:
        return
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(array).__name__}")
    if array.dtype != dtype:
        raise ValueError(f"{name}: expected dtype {dtype}, got {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {array.shape}")
    if not array.flags.c_contiguous:
        raise ValueError(f"{name}: must be C-contiguous")


def _kernel_signatures() -> list[tuple[Any, ...]]:
    # Decoded frames' columns are read-only views (numpy.frombuffer), JSON ones writable.
    floats = numba.types.Array(numba.types.float64, 1, "C")
    out = []
    for ts_ro, values_ro in itertools.product((False, True), repeat=2):
        ints = numba.types.Array(numba.types.int64, 1, "C", readonly=ts_ro)
        column = numba.types.Array(numba.types.float64, 1, "C", readonly=values_ro)
        out.append((floats, ints, column, numba.types.float64))
    return out


_SEALED: Final = SealedKernel(_update_kernel, _kernel_signatures)


def _checked_update(state: object, ts_ms: object, values: object, alpha: object) -> int:
    """The kernel behind full argument checks (clear errors, in the reference order), compiling its
    specialisations once; returns the kernel's code."""
    _check_state(state, "state", writable=True)
    _check_column(ts_ms, "ts_ms", _I8)
    _check_column(values, "values", _F8)
    assert isinstance(state, np.ndarray)  # for the type checker: the checks above made sure
    assert isinstance(ts_ms, np.ndarray) and isinstance(values, np.ndarray)
    if ts_ms.shape[0] != values.shape[0]:
        raise ValueError(f"values: has {values.shape[0]} readings but ts_ms has {ts_ms.shape[0]}")
    if not (isinstance(alpha, (float, int)) and 0.0 < alpha <= 1.0):
        raise ValueError(f"alpha: must lie in (0, 1], got {alpha!r}")
    _SEALED.seal()
    dispatcher: Any = _update_kernel
    # Valid but not the kernel's types (an ndarray subclass, a dtype spelled differently): plain
    # arrays, views of the same memory (the state is updated in place).
    state, ts_ms, values = (np.asarray(array) for array in (state, ts_ms, values))
    return int(dispatcher(state, ts_ms, values, float(alpha)))


def update(state: FloatArray, ts_ms: IntArray, values: FloatArray, alpha: float = DEFAULT_ALPHA) -> None:
    """Fold a batch of readings, oldest first, into ``state`` in place.

    ``ts_ms`` is int64 epoch milliseconds and ``values`` float64, 1-D, C-contiguous and of equal length
    (what :func:`streams.frames.decode_frame` yields, read-only views included). A batch holding a
    non-finite value is rejected whole, leaving ``state`` unchanged. Readings older than the state's
    newest still count for the moments and the EW fields; they do not replace ``LAST``.
    """
    # Runs once per signal and message: the arguments' Python checks cost as much as the kernel on a
    # small batch. The kernel is called straight away with compilation disabled, so numba's
    # dispatcher checks the types itself (in C, as part of the call) and raises TypeError for
    # anything else, which takes the checked path; the kernel checks the sizes.
    if _SEALED.ready and type(alpha) is float and 0.0 < alpha <= 1.0:
        try:
            bad = _update_kernel(state, ts_ms, values, alpha)
        except TypeError:
            bad = _checked_update(state, ts_ms, values, alpha)
    else:
        bad = _checked_update(state, ts_ms, values, alpha)
    if bad >= 0:
        raise ValueError(f"values: values[{bad}] is not finite ({values[bad]})")
    if bad == _BAD_STATE_SIZE:
        _check_state(state, "state", writable=True)  # raises, naming the shape
    if bad == _BAD_LENGTHS:
        raise ValueError(f"values: has {values.shape[0]} readings but ts_ms has {ts_ms.shape[0]}")


def _check_times(ts_ms: IntArray, n: int, runs: int, lasts: bool, name: str) -> None:
    """``ts_ms``'s length: one per reading, or with ``lasts`` one per run."""
    if lasts and ts_ms.shape[0] != runs:
        raise ValueError(f"{name}: has {ts_ms.shape[0]} timestamps but there are {runs} runs (lasts)")
    if not lasts and ts_ms.shape[0] != n:
        raise ValueError(f"{name}: has {n} readings but ts_ms has {ts_ms.shape[0]}")


def update_runs(
    state: FloatArray,
    ts_ms: IntArray,
    values: FloatArray,
    ends: IntArray,
    alpha: float = DEFAULT_ALPHA,
    *,
    lasts: bool = False,
) -> None:
    """:func:`update` for each run of readings ``[ends[k-1], ends[k])`` in turn, in one kernel call.

    The state is bit for bit what one :func:`update` call per run gives (each run is folded as its
    own batch), so a worker that concatenates consecutive messages' readings of a signal stays
    identical to one that applies them one by one. ``ends`` is int64, non-decreasing, and its last
    element is the number of readings. A non-finite value anywhere rejects every run (state unchanged).

    ``lasts``: every run is oldest first (timestamps non-decreasing, as every decoded message's
    readings are) and ``ts_ms`` holds only each run's last timestamp, one per run: the same state,
    since the newest reading of such a run is its last, without joining every reading's timestamp
    (a copy and a pass over 8 bytes a reading). Whether the runs are ordered is the caller's word.
    """
    _check_state(state, "state", writable=True)
    _check_column(ts_ms, "ts_ms", _I8)
    _check_column(values, "values", _F8)
    _check_column(ends, "ends", _I8)
    n = values.shape[0]
    _check_times(ts_ms, n, ends.shape[0], lasts, "values")
    ends_error = f"ends: must be non-decreasing run ends finishing at {n}"
    if ends.shape[0] == 0 or int(ends[-1]) != n or int(ends[0]) < 0:
        raise ValueError(ends_error)
    if not (isinstance(alpha, (float, int)) and 0.0 < alpha <= 1.0):
        raise ValueError(f"alpha: must lie in (0, 1], got {alpha!r}")
    # The kernel checks the order of ``ends`` (numpy's diff and any cost more than the folding).
    bad = _update_runs_kernel(state, ts_ms, values, ends, bool(lasts), float(alpha))
    if bad == -2:
        raise ValueError(ends_error)
    if bad >= 0:
        raise ValueError(f"values: values[{bad}] is not finite ({values[bad]})")


def update_runs_side_by_side(
    group: Sequence[tuple[FloatArray, IntArray, FloatArray]],
    ends: IntArray,
    alpha: float = DEFAULT_ALPHA,
    *,
    lasts: bool = False,
) -> None:
    """:func:`update_runs` of two or three signals, ``(state, ts_ms, values)`` each, whose runs end at
    the same ``ends``, in one kernel call that folds them side by side: their EW recurrences are
    independent, so the core runs their latency-bound chains at once (a frame's five signals as a
    triple and a pair: ~3.4 ns a reading instead of ~5.1). Each state is bit for bit what its own
    :func:`update_runs` leaves; a non-finite value in any leaves every state unchanged. ``lasts``:
    as for :func:`update_runs`, for every signal of the group."""
    if len(group) not in (2, 3):
        raise ValueError(f"group: must hold 2 or 3 signals, got {len(group)}")
    for index, (state, ts_ms, values) in enumerate(group):
        _check_state(state, f"group[{index}].state", writable=True)
        _check_column(ts_ms, f"group[{index}].ts_ms", _I8)
        _check_column(values, f"group[{index}].values", _F8)
        if not lasts:
            _check_times(ts_ms, values.shape[0], 0, lasts, f"group[{index}].values")
    if len({id(state) for state, _, _ in group}) != len(group):
        raise ValueError("group: each signal needs its own state")
    _check_column(ends, "ends", _I8)
    if lasts:
        for index, (_, ts_ms, values) in enumerate(group):
            _check_times(ts_ms, values.shape[0], ends.shape[0], lasts, f"group[{index}].values")
    n = group[0][2].shape[0]
    ends_error = f"ends: must be non-decreasing run ends finishing at {n} (every signal's length)"
    if any(values.shape[0] != n for _, _, values in group):
        raise ValueError(ends_error)
    if ends.shape[0] == 0 or int(ends[-1]) != n or int(ends[0]) < 0:
        raise ValueError(ends_error)
    if not (isinstance(alpha, (float, int)) and 0.0 < alpha <= 1.0):
        raise ValueError(f"alpha: must lie in (0, 1], got {alpha!r}")
    ordered = bool(lasts)
    if len(group) == 2:
        (state_a, ts_a, values_a), (state_b, ts_b, values_b) = group
        bad = _update_runs_pair_kernel(
            state_a, ts_a, values_a, state_b, ts_b, values_b, ends, ordered, float(alpha)
        )
    else:
        (state_a, ts_a, values_a), (state_b, ts_b, values_b), (state_c, ts_c, values_c) = group
        bad = _update_runs_triple_kernel(
            state_a,
            ts_a,
            values_a,
            state_b,
            ts_b,
            values_b,
            state_c,
            ts_c,
            values_c,
            ends,
            ordered,
            float(alpha),
        )
    if bad == -2:
        raise ValueError(ends_error)
    if bad >= 0:
        index, row = divmod(bad, n)
        values = group[index][2]
        raise ValueError(f"group[{index}].values: values[{row}] is not finite ({values[row]})")


def _maybe(value: float) -> float | None:
    return None if math.isnan(value) else value


def summarize(state: FloatArray) -> SignalSummary:
    """Plain Python numbers for reports, alerts and the web API."""
    _check_state(state, "state", writable=False)
    count, mean, m2, lo, hi, last, last_ts, ew_mean, ew_var, _ = (float(v) for v in state)
    n = int(count)
    if n == 0:
        return SignalSummary(0, None, None, None, None, None, None, None, None)
    return SignalSummary(
        count=n,
        mean=mean,
        std=math.sqrt(m2 / (count - 1.0)) if n >= 2 else None,
        min=lo,
        max=hi,
        last=last,
        last_ts_ms=int(last_ts),
        ew_mean=_maybe(ew_mean),
        ew_std=_maybe(math.sqrt(ew_var)) if ew_var >= 0.0 else None,
    )


def merge(a: FloatArray, b: FloatArray) -> FloatArray:
    """The state of both streams together, as a new array (``a`` and ``b`` are not modified).

    COUNT, MEAN, M2, MIN, MAX and SUM combine exactly as if every reading had been fed to one state
    (the pairwise update of Chan, Golub and LeVeque). The EW fields, LAST and LAST_TS are taken
    from the newer state, the one with the larger LAST_TS (``b`` on a tie): an EW average cannot be
    recombined without the interleaving of the readings, and the newer side describes the present.
    """
    _check_state(a, "a", writable=False)
    _check_state(b, "b", writable=False)
    if a[COUNT] == 0.0:
        return b.copy()
    if b[COUNT] == 0.0:
        return a.copy()
    newer = b if b[LAST_TS] >= a[LAST_TS] else a
    out = newer.copy()
    na, nb = float(a[COUNT]), float(b[COUNT])
    n = na + nb
    delta = float(b[MEAN]) - float(a[MEAN])
    out[COUNT] = n
    out[MEAN] = float(a[MEAN]) + delta * (nb / n)
    out[M2] = float(a[M2]) + float(b[M2]) + delta * delta * (na * nb / n)
    out[MIN] = min(float(a[MIN]), float(b[MIN]))
    out[MAX] = max(float(a[MAX]), float(b[MAX]))
    out[SUM] = float(a[SUM]) + float(b[SUM])
    return out


def to_list(state: FloatArray) -> list[float | str | None]:
    """JSON-safe form: JSON has no NaN or infinity, so NaN (a statistic not defined yet) becomes
    ``None`` and an overflowed infinity ``"inf"``/``"-inf"``, kept exactly through a restart."""
    _check_state(state, "state", writable=False)
    return [v if math.isfinite(v) else encode_number(v) for v in state.tolist()]


def from_list(values: list[float | str | None]) -> FloatArray:
    """Inverse of :func:`to_list`; raises ValueError on anything that is not such a list."""
    if not isinstance(values, list) or len(values) != STATE_SIZE:
        raise ValueError(f"values: expected a list of {STATE_SIZE} numbers or nulls")
    state = np.empty(STATE_SIZE, dtype=np.float64)
    for index, value in enumerate(values):
        state[index] = decode_number(value, f"values[{index}]")
    count = state[COUNT]
    if not (count >= 0.0 and count == math.floor(count)):
        raise ValueError(f"values[{COUNT}]: the count must be a non-negative integer, got {count}")
    return state
