"""Expected level of a temperature-like signal, so drift detectors judge ``reading - expected``.

A machine temperature follows two effects no fixed baseline can absorb (docs/drift-and-spc.md,
"Temperatures"): it heats towards a running level while the machine runs and cools towards the
ambient otherwise (a thermal lag of minutes, longer than a typical run), and the ambient itself
swings over the day. The model is

    expected(t) = ambient(t) + g * x(t),   x' = (u(t) - x) / tau,   u = 1 while running, else 0

- **Thermal part** ``g * x``: a first-order lag driven by the machine state. ``tau`` and ``g`` are
  learnt from the signal's first ``train_s`` of readings: least squares of
  ``reading ~ c + g * x_tau + b * t + h * exp(-t / tau)`` for each of :data:`N_TAUS` time
  constants (none, then a log grid from 60 s to 90 min); ``b * t`` absorbs the ambient's slow change
  over those hours and ``h * exp(-t / tau)`` the filter's unknown starting temperature. The best by
  residual sum of squares, refined by a parabola through its neighbours, wins. Only running sums
  are kept, so training stores no readings.
- **Ambient part**: a configured ambient (hall) sensor, ``ambient(t) = hall(t) + c``, available
  once the 3,600 readings after training (an hour at 1 Hz) have given ``c``; else a profile by
  local hour of day of ``reading - g * x``, learnt from the readings after training: per hour an exponentially
  weighted mean over days (each day's move capped at ``clip_sigma`` training residual sigmas, so
  a drift cannot teach itself to the profile in one day), linearly interpolated between hour
  centres. Until both hours around a reading have a value (a day after training) the reading has
  no expected level from the profile.
- **Interim ambient** (``interim_s`` > 0; 0: off, such readings have no expected level, NaN, and
  are not judged): for readings whose hours have no profile value yet, an exponentially weighted
  estimate of ``reading - g * x`` over the previous readings with time constant ``interim_s``,
  either its mean or (``interim_trend``) Brown's double smoothing ``2 s1 - s2`` extrapolated by
  its slope ``(s1 - s2) / T``, which follows a linear ambient without lag. It is used once it has
  seen ``interim_s`` of readings and restarts after a gap longer than ``interim_s``; it follows a
  slow drift as well, so it hides part of one (docs/drift-and-spc.md, "Temperatures: the first
  day").
- **Late readings** (older than one already folded in) are judged but learn nothing: the interim
  estimate judges one within ``interim_s`` of its newest reading, as it stands; the profile takes
  one only into the hour being accumulated (an earlier hour is folded already); and neither counts
  as the handover from the interim ambient to the profile.

The model's state is one float64 vector (:func:`new_state`), serialised with :func:`to_list` into
the machine's table state (2 KB at most: ~2.0 KB of JSON while training, ~0.8 KB afterwards).
Everything here is pure: arrays in, arrays out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from models import packed_floats
from models.arrays import BoolArray, FloatArray, IntArray
from models.finite import NORMAL_MIN, all_finite, flushed
from models.numba_config import kernel

__all__ = [
    "N_TAUS",
    "TAUS_S",
    "ThermalFit",
    "ThermalParams",
    "fit",
    "from_list",
    "handovers",
    "last_ambient",
    "new_state",
    "ready",
    "to_list",
    "update",
    "uses_ambient",
]

N_TAUS: Final = 16
# A step (no lag: the level follows the state within a reading) and a log grid from 1 to 90 min.
TAUS_S: Final = np.concatenate(([1e-3], np.geomspace(60.0, 5_400.0, N_TAUS - 1)))
_RATIO: Final = float(TAUS_S[2] / TAUS_S[1])
_HOUR_MS: Final = 3_600_000.0
_DAY_MS: Final = 86_400_000.0
_VERSION: Final = 2.0  # 2: the interim ambient's slots after the profile (1 loads: they start at 0)
_VERSIONS: Final = (1.0, 2.0)
_OFFSET_READINGS: Final = 3_600.0

# Header.
VERSION: Final = 0
PHASE: Final = 1  # 0 none seen, 2 training, 3 fitted
T0_MS: Final = 2  # first reading
LAST_MS: Final = 3
U_PREV: Final = 4  # running flag of the last reading
Y0: Final = 5  # first reading's value: training sums are of value - Y0 (conditioning)
FLIPS: Final = 6  # running <-> not running changes seen in training
TAU: Final = 7
GAIN: Final = 8
OFFSET: Final = 9  # ambient-sensor mode: mean of reading - hall - g x over the hour after training
X: Final = 10  # the fitted filter's state
SIGMA_R: Final = 11  # training residual sigma
LAST_AMBIENT: Final = 12
CUR_BIN: Final = 13  # profile: the hour being accumulated (-1: none), its day, sum and count
CUR_DAY: Final = 14
CUR_SUM: Final = 15
CUR_N: Final = 16
HAS_AMBIENT: Final = 17
HEADER: Final = 18
# Training: shared sums, then per time constant (filter state and sums), from TRAIN_AT.
S_N: Final = 0
S_T: Final = 1
S_TT: Final = 2
S_Y: Final = 3
S_TY: Final = 4
S_YY: Final = 5
SHARED: Final = 6
K_X: Final = 0
K_SX: Final = 1
K_SXX: Final = 2
K_SXT: Final = 3
K_SXY: Final = 4
K_SE: Final = 5  # e = exp(-(t - t0) / tau): the fading error of the filter's unknown start
K_SEE: Final = 6
K_SEX: Final = 7
K_SET: Final = 8
K_SEY: Final = 9
PER_TAU: Final = 10
TRAIN_AT: Final = HEADER
# After training the same slots hold the profile: value and days per hour (never both in use).
PROFILE_AT: Final = HEADER
SIZE: Final = HEADER + SHARED + N_TAUS * PER_TAU
# Then the interim ambient (after training; the training sums held these slots before): the two
# smoothed values, the time of the last reading folded in (0: none), the time it has seen, whether
# the newest judged reading was judged against it, and how often the profile took over from it.
INTERIM_AT: Final = PROFILE_AT + 2 * 24
I_S1: Final = INTERIM_AT
I_S2: Final = INTERIM_AT + 1
I_LAST_MS: Final = INTERIM_AT + 2
I_SEEN_MS: Final = INTERIM_AT + 3
I_ACTIVE: Final = INTERIM_AT + 4
I_HANDOVERS: Final = INTERIM_AT + 5
_FITTED_SIZE: Final = INTERIM_AT + 6
_FITTED_SIZE_V1: Final = INTERIM_AT

# Parameter vector (ThermalParams.vector()).
P_TRAIN_MS: Final = 0
P_MIN_FLIPS: Final = 1
P_ALPHA_DAY: Final = 2
P_CLIP_SIGMA: Final = 3
P_MIN_BIN_N: Final = 4
P_INTERIM_MS: Final = 5
P_INTERIM_TREND: Final = 6
N_PARAMS: Final = 7


@dataclass(frozen=True, slots=True)
class ThermalParams:
    """How the model learns (see :class:`models.monitoring_config.MonitorSettings` ``thermal_*``)."""

    train_s: float = 10_800.0
    min_flips: int = 6
    alpha_day: float = 0.25
    clip_sigma: float = 3.0
    min_bin_readings: int = 60
    interim_s: float = 0.0  # off here; MonitorSettings.ambient_interim_s has the shipped default
    interim_trend: bool = True

    def vector(self) -> FloatArray:
        if not (self.train_s > 0 and self.min_flips >= 0):
            raise ValueError("train_s > 0 and min_flips >= 0 are required")
        if not (0 < self.alpha_day <= 1 and self.clip_sigma > 0 and self.min_bin_readings >= 1):
            raise ValueError("alpha_day in (0, 1], clip_sigma > 0 and min_bin_readings >= 1 are required")
        if not (self.interim_s >= 0 and math.isfinite(self.interim_s)):
            raise ValueError("interim_s >= 0 (0: off) is required")
        return np.array(
            [
                self.train_s * 1000.0,
                self.min_flips,
                self.alpha_day,
                self.clip_sigma,
                self.min_bin_readings,
                self.interim_s * 1000.0,
                1.0 if self.interim_trend else 0.0,
            ],
            dtype=np.float64,
        )


@dataclass(frozen=True, slots=True)
class ThermalFit:
    """The learnt thermal part: time constant (s), gain (running minus idle level), residual sigma."""

    tau_s: float
    gain: float
    sigma: float


def new_state() -> FloatArray:
    state = np.zeros(SIZE, dtype=np.float64)
    state[VERSION] = _VERSION
    state[CUR_BIN] = -1.0
    return state


@kernel
def _solve(a: FloatArray, b: FloatArray, out: FloatArray) -> bool:
    """Gaussian elimination with partial pivoting (``a`` and ``b`` overwritten); False if singular."""
    m = b.shape[0]
    scale = 0.0
    for r in range(m):
        scale = max(scale, abs(a[r, r]))
    for col in range(m):
        piv = col
        for r in range(col + 1, m):
            if abs(a[r, col]) > abs(a[piv, col]):
                piv = r
        if abs(a[piv, col]) <= 1e-10 * scale:
            return False
        if piv != col:
            for c in range(m):
                a[col, c], a[piv, c] = a[piv, c], a[col, c]
            b[col], b[piv] = b[piv], b[col]
        for r in range(col + 1, m):
            f = a[r, col] / a[col, col]
            for c in range(col, m):
                a[r, c] -= f * a[col, c]
            b[r] -= f * b[col]
    for r in range(m - 1, -1, -1):
        s = b[r]
        for c in range(r + 1, m):
            s -= a[r, c] * out[c]
        out[r] = s / a[r, r]
    return True


@kernel
def _normal_equations(state: FloatArray, k: int, a: FloatArray, b: FloatArray) -> None:
    """``X'X`` and ``X'y`` of ``y ~ c + g x + b t + h e`` for time constant ``k``."""
    sh = TRAIN_AT
    at = TRAIN_AT + SHARED + k * PER_TAU
    n, st, stt = state[sh + S_N], state[sh + S_T], state[sh + S_TT]
    sx, sxx, sxt = state[at + K_SX], state[at + K_SXX], state[at + K_SXT]
    se, see, sex, set_ = state[at + K_SE], state[at + K_SEE], state[at + K_SEX], state[at + K_SET]
    a[0, 0], a[0, 1], a[0, 2], a[0, 3] = n, sx, st, se
    a[1, 0], a[1, 1], a[1, 2], a[1, 3] = sx, sxx, sxt, sex
    a[2, 0], a[2, 1], a[2, 2], a[2, 3] = st, sxt, stt, set_
    a[3, 0], a[3, 1], a[3, 2], a[3, 3] = se, sex, set_, see
    b[0], b[1], b[2], b[3] = state[sh + S_Y], state[at + K_SXY], state[sh + S_TY], state[at + K_SEY]


@kernel
def _fit_kernel(state: FloatArray, taus: FloatArray, ratio: float) -> None:
    """End of training: choose tau, set gain, offset and the filter state; the slots become the profile."""
    k_n = taus.shape[0]
    n = state[TRAIN_AT + S_N]
    syy = state[TRAIN_AT + S_YY]
    sse = np.full(k_n, np.inf)
    coef = np.zeros((k_n, 4))
    a = np.empty((4, 4))
    b = np.empty(4)
    rhs = np.empty(4)
    beta = np.zeros(4)
    for k in range(k_n):
        _normal_equations(state, k, a, b)
        rhs[:] = b
        if _solve(a, b, beta):
            coef[k, :] = beta
            fitted = beta[0] * rhs[0] + beta[1] * rhs[1] + beta[2] * rhs[2] + beta[3] * rhs[3]
            sse[k] = max(syy - fitted, 0.0)
    best = 0
    for k in range(k_n):
        if sse[k] < sse[best]:
            best = k
    if math.isfinite(sse[best]):
        # Parabola through the best and its neighbours, in log tau (the grid's step is ~38 %).
        frac = 0.0
        other = best
        # (Only between neighbours on the log grid: the step below it is not one of them.)
        if 1 < best < k_n - 1 and math.isfinite(sse[best - 1]) and math.isfinite(sse[best + 1]):
            den = sse[best - 1] - 2.0 * sse[best] + sse[best + 1]
            if den > 0.0:
                frac = min(0.5, max(-0.5, 0.5 * (sse[best - 1] - sse[best + 1]) / den))
                other = best + 1 if frac > 0 else best - 1
        w = abs(frac)
        at0 = TRAIN_AT + SHARED + best * PER_TAU
        at1 = TRAIN_AT + SHARED + other * PER_TAU
        tau = taus[best] * ratio**frac
        c = (1.0 - w) * coef[best] + w * coef[other]
        gain = c[1]
        x = (1.0 - w) * state[at0 + K_X] + w * state[at1 + K_X]
        sigma = math.sqrt(sse[best] / max(n - 4.0, 1.0))
    else:
        # No usable fit (e.g. the machine never changed state): no thermal part.
        mean = state[TRAIN_AT + S_Y] / max(n, 1.0)
        tau, gain, x = taus[0], 0.0, state[U_PREV]
        sigma = math.sqrt(max(syy / max(n, 1.0) - mean * mean, 0.0))
    for i in range(TRAIN_AT, state.shape[0]):
        state[i] = 0.0
    state[TAU], state[GAIN], state[X], state[SIGMA_R] = tau, gain, x, sigma
    state[PHASE] = 3.0


# The training kernel's scratch, in runs of N_TAUS values (one value per time constant): the stored
# slots K_X ... K_SEY, then the filter's factor for the reading's step, the fading term of the
# filter's start, 1 / tau and the factor to the power _RUN. Run j starts at j * N_TAUS.
_KEEP: Final = PER_TAU
_FADING: Final = PER_TAU + 1
_INV_TAU: Final = PER_TAU + 2
_KEEP_RUN: Final = PER_TAU + 3
_ACC_ROWS: Final = PER_TAU + 4
# Readings of one step are held back and folded into the filters a run at a time (at most _RUN),
# _GROUP readings per pass over the time constants with their sums in registers: a reading at a
# time loads and stores every sum of every time constant, and the flushes (models.finite) sit on
# the filters' carried chains; together they cost about a third of the kernel (A/B in the docs).
_RUN: Final = 64
_GROUP: Final = 4
_RUN_POWERS: Final = 6  # _RUN == 2 ** _RUN_POWERS: the factor's power by squaring
# Twice the smallest normal float: a margin for the rounding of the lower bounds in _unflushed_safe.
_SAFE_FLOOR: Final = 2.0 * NORMAL_MIN
# A filter driven towards 1 (running) is at 0 or at least this (1 - keep rounds to a multiple of it).
_RISE_MIN: Final = 2.0**-54


@kernel
def _load_acc(state: FloatArray, taus: FloatArray) -> FloatArray:
    """The per-time-constant training slots as runs of :data:`N_TAUS` values per slot.

    A reading updates one slot of every time constant at a time: over a run of contiguous values,
    indexed by a compile-time constant stride, which LLVM vectorises (the stored layout keeps a time
    constant's slots together, and separate arrays would need run-time alias checks it gives up on).
    """
    acc = np.empty(_ACC_ROWS * N_TAUS)
    for k in range(N_TAUS):
        at = TRAIN_AT + SHARED + k * PER_TAU
        for j in range(PER_TAU):
            acc[j * N_TAUS + k] = state[at + j]
        acc[_INV_TAU * N_TAUS + k] = 1.0 / taus[k]
    return acc


@kernel
def _store_acc(state: FloatArray, acc: FloatArray) -> None:
    for k in range(N_TAUS):
        at = TRAIN_AT + SHARED + k * PER_TAU
        for j in range(PER_TAU):
            state[at + j] = acc[j * N_TAUS + k]


@kernel
def _fold_one(acc: FloatArray, u: float, s: float, y: float, fade: bool) -> None:
    """One reading into every time constant's filter and sums (``fade``: carry the fading term on
    by the filter's factor; not for a batch's first reading, whose term was computed afresh)."""
    c = N_TAUS
    if fade:
        for k in range(N_TAUS):
            # Flushed: a short tau's fading error sinks to a subnormal within hours of training
            # and would stay there (models.finite: why); its products add nothing to the sums.
            acc[_FADING * c + k] = flushed(acc[_FADING * c + k] * acc[_KEEP * c + k])
    for k in range(N_TAUS):
        x = u + acc[_KEEP * c + k] * (acc[K_X * c + k] - u)
        x = flushed(x)  # days stopped (u = 0): models.finite, why
        e = acc[_FADING * c + k]
        acc[K_X * c + k] = x
        acc[K_SX * c + k] += x
        acc[K_SXX * c + k] += x * x
        acc[K_SXT * c + k] += x * s
        acc[K_SXY * c + k] += x * y
        acc[K_SE * c + k] += e
        acc[K_SEE * c + k] += e * e
        acc[K_SEX * c + k] += e * x
        acc[K_SET * c + k] += e * s
        acc[K_SEY * c + k] += e * y


@kernel
def _fold_group(
    acc: FloatArray,
    us: tuple[float, float, float, float],
    ss: tuple[float, float, float, float],
    ys: tuple[float, float, float, float],
) -> None:
    """:data:`_GROUP` readings of one step, each as :func:`_fold_one` folds it but unflushed: only
    where :func:`_unflushed_safe` has shown that no value can fall below the smallest normal, so
    the flush would return every value unchanged."""
    c = N_TAUS
    for k in range(N_TAUS):
        keep = acc[_KEEP * c + k]
        e, x = acc[_FADING * c + k], acc[K_X * c + k]
        sx, sxx, sxt, sxy = acc[K_SX * c + k], acc[K_SXX * c + k], acc[K_SXT * c + k], acc[K_SXY * c + k]
        se, see, sex = acc[K_SE * c + k], acc[K_SEE * c + k], acc[K_SEX * c + k]
        set_, sey = acc[K_SET * c + k], acc[K_SEY * c + k]
        for j in range(_GROUP):
            u, s, y = us[j], ss[j], ys[j]
            e = e * keep
            x = u + keep * (x - u)
            sx += x
            sxx += x * x
            sxt += x * s
            sxy += x * y
            se += e
            see += e * e
            sex += e * x
            set_ += e * s
            sey += e * y
        acc[_FADING * c + k], acc[K_X * c + k] = e, x
        acc[K_SX * c + k], acc[K_SXX * c + k], acc[K_SXT * c + k], acc[K_SXY * c + k] = sx, sxx, sxt, sxy
        acc[K_SE * c + k], acc[K_SEE * c + k], acc[K_SEX * c + k] = se, see, sex
        acc[K_SET * c + k], acc[K_SEY * c + k] = set_, sey


@kernel
def _unflushed_safe(acc: FloatArray, idle: bool, busy: bool) -> bool:
    """Can the next run (at most :data:`_RUN` readings of the current step; ``idle``/``busy``: some
    of them not running/running) be folded without flushes, no value falling below the smallest
    normal float on the way? Then the unflushed sums are bit for bit the flushed ones.

    Lower bounds, each reading at most a factor ``keep`` (<= 1) down, so ``keep ** _RUN`` over a
    run: the fading term only decays; the filter decays only while idle, and a running reading
    takes it to 0 or above :data:`_RISE_MIN` unless it was already higher. A factor of 0 zeroes
    both exactly (the filter then equals the state).
    """
    c = N_TAUS
    for k in range(N_TAUS):
        if acc[_KEEP * c + k] == 0.0:
            continue
        low = acc[_KEEP_RUN * c + k]
        e = acc[_FADING * c + k]
        if e != 0.0 and e * low < _SAFE_FLOOR:
            return False
        if idle:
            x = acc[K_X * c + k]
            floor = min(x, _RISE_MIN) if x != 0.0 else (_RISE_MIN if busy else 0.0)
            if floor != 0.0 and floor * low < _SAFE_FLOOR:
                return False
    return True


@kernel
def _fold_run(acc: FloatArray, held: FloatArray, lo: int, hi: int) -> None:
    """Held readings ``lo`` to ``hi`` (:data:`_GROUP` to :data:`_RUN`, all of the current step) into
    the filters; the factors' powers must be set (:func:`_set_run_powers`)."""
    done = lo
    if hi - lo >= _GROUP:
        idle = 0
        for j in range(lo, hi):
            if held[_H_U + j] == 0.0:
                idle += 1
        if _unflushed_safe(acc, idle > 0, idle < hi - lo):
            u, s, y = _H_U, _H_S, _H_Y
            for j in range(lo, hi - _GROUP + 1, _GROUP):
                _fold_group(
                    acc,
                    (held[u + j], held[u + j + 1], held[u + j + 2], held[u + j + 3]),
                    (held[s + j], held[s + j + 1], held[s + j + 2], held[s + j + 3]),
                    (held[y + j], held[y + j + 1], held[y + j + 2], held[y + j + 3]),
                )
                done = j + _GROUP
    for j in range(done, hi):
        _fold_one(acc, held[_H_U + j], held[_H_S + j], held[_H_Y + j], True)


@kernel
def _set_step(acc: FloatArray, dt: float) -> None:
    """The filters' factor for a step of ``dt`` seconds."""
    c = N_TAUS
    for k in range(N_TAUS):
        acc[_KEEP * c + k] = math.exp(-dt * acc[_INV_TAU * c + k])


@kernel
def _set_run_powers(acc: FloatArray) -> None:
    """The factor's power :data:`_RUN`, for :func:`_unflushed_safe` (only once a run of the step
    comes: readings whose step changes every time never need it)."""
    c = N_TAUS
    for k in range(N_TAUS):
        keep = acc[_KEEP * c + k]
        for _ in range(_RUN_POWERS):
            keep *= keep
        acc[_KEEP_RUN * c + k] = keep


# The training kernel holds up to _CHUNK readings' values for the filters (running flag, hours
# since the first reading, value) and their steps (ms), in runs of _CHUNK: small enough for the cache.
_CHUNK: Final = 512
_H_U: Final = 0
_H_S: Final = _CHUNK
_H_Y: Final = 2 * _CHUNK
_H_STEP: Final = 3 * _CHUNK


@kernel
def _scan(
    state: FloatArray,
    acc: FloatArray,
    times: IntArray,
    values: FloatArray,
    begin: int,
    since_ms: int,
    running_now: bool,
    ambient: FloatArray,
    ambient_mode: bool,
    p: FloatArray,
    held: FloatArray,
) -> tuple[int, bool]:
    """Up to :data:`_CHUNK` training readings from ``begin``: the header and the shared sums, and
    each reading's inputs to the filters into ``held``; how many, and whether training ends there.

    (A kernel of its own, without calls: in the loop that also folds the filters, its sums would
    live on the stack, costing a store and a load per sum and reading.)
    """
    sh = TRAIN_AT
    s_n, s_t, s_tt = state[sh + S_N], state[sh + S_T], state[sh + S_TT]
    s_y, s_ty, s_yy = state[sh + S_Y], state[sh + S_TY], state[sh + S_YY]
    phase, t0, last, y0, u_prev, flips = (
        state[PHASE], state[T0_MS], state[LAST_MS], state[Y0], state[U_PREV], state[FLIPS]
    )  # fmt: skip
    train_ms, min_flips = p[P_TRAIN_MS], p[P_MIN_FLIPS]
    end = min(values.shape[0], begin + _CHUNK)
    m = 0
    fit = False
    for i in range(begin, end):
        t = float(times[i])
        u = 1.0 if (running_now if times[i] >= since_ms else u_prev != 0.0) else 0.0
        amb = ambient[i] if ambient_mode else 0.0
        if phase == 0.0:
            phase, t0, last, y0, u_prev = 2.0, t, t, values[i] - amb, u
            for k in range(N_TAUS):
                acc[K_X * N_TAUS + k] = u
        step = max(t - last, 0.0)  # ms: whole, so equal exactly when the seconds are
        if u != u_prev:
            flips += 1.0
        # (A late reading does not turn the filter's clock back: the next one would count the
        # time between them twice.)
        u_prev, last = u, max(last, t)
        y = values[i] - amb - y0
        elapsed = (t - t0) / 1000.0
        s = elapsed * (1000.0 / _HOUR_MS)
        s_n += 1.0
        s_t += s
        s_tt += s * s
        s_y += y
        s_ty += s * y
        s_yy += y * y
        held[_H_U + m], held[_H_S + m], held[_H_Y + m], held[_H_STEP + m] = u, s, y, step
        m += 1
        trained = t - t0
        if (trained >= train_ms and flips >= min_flips) or trained >= 4.0 * train_ms:
            fit = True
            break
    state[PHASE], state[T0_MS], state[LAST_MS], state[Y0], state[U_PREV], state[FLIPS] = (
        phase, t0, last, y0, u_prev, flips
    )  # fmt: skip
    state[sh + S_N], state[sh + S_T], state[sh + S_TT] = s_n, s_t, s_tt
    state[sh + S_Y], state[sh + S_TY], state[sh + S_YY] = s_y, s_ty, s_yy
    return m, fit


@kernel
def _train(
    state: FloatArray,
    times: IntArray,
    values: FloatArray,
    since_ms: int,
    running_now: bool,
    ambient: FloatArray,
    ambient_mode: bool,
    taus: FloatArray,
    ratio: float,
    p: FloatArray,
) -> int:
    """Training readings from the batch's start; returns the index of the first reading after it.

    The sums live in a scratch layout for the batch (:func:`_load_acc`) and go back to ``state``
    before a fit and at the end. Each sum is accumulated reading by reading in the same order and
    with the same operations as in the stored layout, so the state is bit for bit what it was
    before this layout (16 filters' sums at ~20 ns a reading instead of ~54). The readings are
    taken a chunk at a time: first the shared sums and each reading's inputs to the filters
    (:func:`_scan`), then the filters, a run of one step at a time (:func:`_fold_run`), again in
    the same order and bit for bit.
    """
    n = values.shape[0]
    if n == 0 or state[PHASE] >= 3.0:
        return 0
    acc = _load_acc(state, taus)
    held = np.empty(4 * _CHUNK)
    c = N_TAUS
    step_cached = -1.0
    powers_ready = False
    begin = 0
    fit = False
    while begin < n and not fit:
        m, fit = _scan(
            state, acc, times, values, begin, since_ms, running_now, ambient, ambient_mode, p, held
        )
        j = 0
        while j < m:
            step = held[_H_STEP + j]
            if step != step_cached:
                _set_step(acc, step / 1000.0)
                step_cached = step
                powers_ready = False
            if begin + j == 0:
                # exp(-elapsed / tau) per time constant: computed for a batch's first reading, then
                # carried on by the filters' own factors (a multiplication instead of an exp per
                # reading and tau).
                elapsed = (float(times[0]) - state[T0_MS]) / 1000.0
                for k in range(N_TAUS):
                    acc[_FADING * c + k] = math.exp(-elapsed * acc[_INV_TAU * c + k])
                _fold_one(acc, held[_H_U], held[_H_S], held[_H_Y], False)
                j += 1
                continue
            hi = j + 1
            while hi < m and hi - j < _RUN and held[_H_STEP + hi] == step:
                hi += 1
            if hi - j < _GROUP:  # (readings whose step changes every time: one at a time)
                for r in range(j, hi):
                    _fold_one(acc, held[_H_U + r], held[_H_S + r], held[_H_Y + r], True)
            else:
                if not powers_ready:
                    _set_run_powers(acc)
                    powers_ready = True
                _fold_run(acc, held, j, hi)
            j = hi
        begin += m
    _store_acc(state, acc)
    if fit:
        _fit_kernel(state, taus, ratio)
    return begin


@kernel
def _fold_bin(state: FloatArray, p: FloatArray, b: int, total: float, count: float) -> None:
    """A finished hour into the profile: the first value as is, then EW over days, moves capped."""
    if b >= 0 and count >= p[P_MIN_BIN_N]:
        mean = total / count
        at = PROFILE_AT + 2 * b
        days = state[at + 1]
        if days == 0.0:
            state[at] = mean
        else:
            cap = p[P_CLIP_SIGMA] * max(state[SIGMA_R], 1e-9)
            move = min(cap, max(-cap, mean - state[at]))
            state[at] += max(p[P_ALPHA_DAY], 1.0 / (days + 1.0)) * move
        state[at + 1] = days + 1.0


@kernel
def _expect(
    state: FloatArray,
    times: IntArray,
    values: FloatArray,
    start: int,
    since_ms: int,
    running_now: bool,
    ambient: FloatArray,
    ambient_mode: bool,
    offset_ms: int,
    p: FloatArray,
    expected: FloatArray,
    interim: BoolArray,
) -> None:
    """The fitted model over ``values[start:]``, its state in locals (stores to ``state`` could alias).

    The profile's interpolation is linear in time between two hour centres, so it is recomputed
    only when a reading leaves the current half hour: per reading there is the lag filter, one
    comparison and a multiply-add. The interim ambient runs only where the profile has no value
    (``interim[i]``: the expected level is the interim's), so a learnt profile costs nothing more.
    """
    n = values.shape[0]
    x, gain, last, u_prev = state[X], state[GAIN], state[LAST_MS], state[U_PREV]
    inv_tau = 1.0 / state[TAU]
    offset = state[OFFSET]
    cur_bin, cur_day, total, count = int(state[CUR_BIN]), state[CUR_DAY], state[CUR_SUM], state[CUR_N]
    dt_cached = -1.0
    keep = 1.0
    seg_lo, seg_hi = 1.0, 0.0  # local ms of the current half hour (empty: recompute at once)
    slope, level = 0.0, math.nan  # expected ambient = level + slope * (local - seg_lo)
    interim_ms = p[P_INTERIM_MS]
    trend = p[P_INTERIM_TREND] != 0.0
    s1, s2, i_last, i_seen = state[I_S1], state[I_S2], state[I_LAST_MS], state[I_SEEN_MS]
    active, handovers = state[I_ACTIVE], state[I_HANDOVERS]
    i_dt_cached = -1.0
    i_keep = 1.0
    flags = interim.shape[0] != 0  # the caller wants to know which readings are interim
    profiled = True
    in_bin = True  # the reading's hour is the one being accumulated
    for i in range(start, n):
        t = float(times[i])
        late = t < last  # older than a reading already folded in
        u = 1.0 if (running_now if times[i] >= since_ms else u_prev != 0.0) else 0.0
        dt = max(t - last, 0.0) * 0.001
        if dt != dt_cached:
            keep = math.exp(-dt * inv_tau)
            dt_cached = dt
        x = u + keep * (x - u)
        x = flushed(x)  # days stopped (u = 0) would leave x a subnormal: models.finite, why
        # (A late reading does not turn the filter's clock back: the next one would count the
        # time between them twice.)
        u_prev, last = u, max(last, t)
        thermal = gain * x
        if ambient_mode:
            if count < _OFFSET_READINGS:
                # The first readings after training (an hour at 1 Hz) learn the constant (the
                # training's trend at its end extrapolates poorly); until then no expected level.
                total += values[i] - ambient[i] - thermal
                count += 1.0
                offset = total / count
                expected[i] = math.nan
            else:
                expected[i] = ambient[i] + offset + thermal
            continue
        local = t + offset_ms
        if not seg_lo <= local < seg_hi:
            day = math.floor(local / _DAY_MS)
            half = math.floor((local - day * _DAY_MS) / (_HOUR_MS / 2.0))
            b = int(half) // 2
            # Only a newer hour ends the current one: a late reading from an hour already folded
            # would otherwise fold the current hour half-way and start it again (two folds a day).
            if cur_bin < 0 or day * 24.0 + b > cur_day * 24.0 + cur_bin:
                _fold_bin(state, p, cur_bin, total, count)
                cur_bin, cur_day, total, count = b, day, 0.0, 0.0
            in_bin = b == cur_bin and day == cur_day
            seg_lo = day * _DAY_MS + half * (_HOUR_MS / 2.0)
            seg_hi = seg_lo + _HOUR_MS / 2.0
            j = (int(half) - 1) // 2  # the hour centre at or before the segment
            j0 = PROFILE_AT + 2 * ((j + 24) % 24)
            j1 = PROFILE_AT + 2 * ((j + 25) % 24)
            if state[j0 + 1] > 0.0 and state[j1 + 1] > 0.0:
                centre = day * _DAY_MS + (j + 0.5) * _HOUR_MS
                slope = (state[j1] - state[j0]) / _HOUR_MS
                level = state[j0] + slope * (seg_lo - centre)
                profiled = True
                # (Not for a late reading: on the first day the profile has values for the hours
                # before the last one, and the next reading is judged against the interim again.)
                if active != 0.0 and not late:
                    active = 0.0
                    handovers += 1.0
            else:
                slope, level = 0.0, math.nan
                profiled = interim_ms <= 0.0  # NaN: not judged
        ambient_now = values[i] - thermal
        if profiled:
            expected[i] = level + slope * (local - seg_lo) + thermal
        else:
            # No profile value yet: the interim estimate from the previous readings, then this one in.
            gap = t - i_last
            if not late and (i_last <= 0.0 or gap > interim_ms):
                # First reading, or after a gap the smoothed values no longer describe: restart.
                s1, s2, i_seen = ambient_now, ambient_now, 0.0
                expected[i] = math.nan
                i_last = t
            else:
                # A late reading (older than one already folded in) is judged against the estimate
                # as it stands, if that describes its time, and not folded in: the smoothing runs
                # forward in time, and restarting it would leave the next interim_s unjudged.
                step = 0.0 if late else gap
                guess = s1
                if trend:
                    guess = 2.0 * s1 - s2 + (s1 - s2) * (step / interim_ms)
                # Judged only once it has seen a time constant of readings (before, the start dominates).
                if i_seen >= interim_ms and abs(gap) <= interim_ms:
                    expected[i] = guess + thermal
                    if flags:
                        interim[i] = True
                    # (Not for a late reading: its half hour may lack a profile value after the
                    # profile took over, and the next reading would count a second handover.)
                    if not late:
                        active = 1.0
                else:
                    expected[i] = math.nan
                if not late:
                    if gap != i_dt_cached:
                        i_keep = math.exp(-gap / interim_ms)
                        i_dt_cached = gap
                    s1 = ambient_now + i_keep * (s1 - ambient_now)
                    s2 = s1 + i_keep * (s2 - s1)
                    i_seen += gap
                    i_last = t
        if in_bin:
            total += ambient_now
            count += 1.0
    state[X], state[LAST_MS], state[U_PREV], state[OFFSET] = x, last, u_prev, offset
    state[I_S1], state[I_S2], state[I_LAST_MS], state[I_SEEN_MS] = s1, s2, i_last, i_seen
    state[I_ACTIVE], state[I_HANDOVERS] = active, handovers
    state[CUR_BIN], state[CUR_DAY], state[CUR_SUM], state[CUR_N] = cur_bin, cur_day, total, count


@kernel
def _update_kernel(
    state: FloatArray,
    times: IntArray,
    values: FloatArray,
    since_ms: int,
    running_now: bool,
    ambient: FloatArray,
    ambient_mode: bool,
    offset_ms: int,
    taus: FloatArray,
    ratio: float,
    p: FloatArray,
    expected: FloatArray,
    interim: BoolArray,
) -> bool:
    """False (state untouched) if a value is not finite (on the bits: a float sum of ``0 * x`` is one
    serial chain of additions, ~0.75 ns a reading, see models.finite)."""
    if not all_finite(values):
        return False
    start = 0
    if state[PHASE] < 3.0:
        start = _train(state, times, values, since_ms, running_now, ambient, ambient_mode, taus, ratio, p)
        for i in range(start):
            expected[i] = math.nan
    if start < values.shape[0]:
        _expect(
            state,
            times,
            values,
            start,
            since_ms,
            running_now,
            ambient,
            ambient_mode,
            offset_ms,
            p,
            expected,
            interim,
        )
    return True


_F8: Final = np.dtype(np.float64)
_I8: Final = np.dtype(np.int64)
_NO_FLAGS: Final = np.empty(0, dtype=np.bool_)  # empty, so nothing is ever written to it


def update(
    state: FloatArray,
    times: IntArray,
    values: FloatArray,
    params: FloatArray,
    *,
    running_since_ms: int,
    running: bool,
    utc_offset_ms: int,
    ambient: FloatArray | None = None,
    interim: BoolArray | None = None,
) -> FloatArray:
    """Fold a batch (oldest first) into the model; the expected level per reading (NaN: none yet).

    The machine state per reading: ``running`` from ``running_since_ms`` on (the current state and
    when it began), before that the state of the previous reading. ``utc_offset_ms``: the plant's
    UTC offset for the batch (the profile is by local hour). ``ambient``: the hall sensor's reading
    at each time, in ambient-sensor mode (a model learns in the mode of its first batch).
    ``interim``: if given (bool, one per value), set True where the expected level is the interim
    ambient's (no profile value yet), so alerts can say what they were judged against.
    """
    if not (isinstance(state, np.ndarray) and state.dtype == _F8 and state.shape == (SIZE,)):
        raise ValueError("state: expected new_state()")
    if not (isinstance(times, np.ndarray) and times.dtype == _I8 and times.ndim == 1):
        raise ValueError("times: expected 1-D int64 epoch milliseconds")
    if not (isinstance(values, np.ndarray) and values.dtype == _F8 and values.shape == times.shape):
        raise ValueError("values: expected float64 of the times' shape")
    if not (isinstance(params, np.ndarray) and params.shape == (N_PARAMS,)):
        raise ValueError("params: expected ThermalParams.vector()")
    ambient_mode = ambient is not None
    amb = np.ascontiguousarray(ambient, dtype=np.float64) if ambient is not None else values
    if amb.shape != values.shape:
        raise ValueError("ambient: expected one reading per value")
    if ambient_mode and amb.size and not np.isfinite(amb).all():
        raise ValueError("ambient: readings must be finite")
    out = np.empty(values.shape[0], dtype=np.float64)
    if interim is None:
        interim = _NO_FLAGS  # not written to (empty): no allocation per call
    elif not (
        isinstance(interim, np.ndarray) and interim.dtype == np.bool_ and interim.shape == values.shape
    ):
        raise ValueError("interim: expected a bool array of the values' shape")
    else:
        interim[:] = False  # the kernel marks only the interim readings
    finite = _update_kernel(
        state,
        np.ascontiguousarray(times),
        np.ascontiguousarray(values),
        int(running_since_ms),
        bool(running),
        amb,
        ambient_mode,
        int(utc_offset_ms),
        TAUS_S,
        _RATIO,
        params,
        out,
        interim,
    )
    if not finite:
        raise ValueError("values: readings must be finite")
    if ambient_mode and amb.size:
        state[LAST_AMBIENT] = amb[-1]
        state[HAS_AMBIENT] = 1.0
    return out


def fit(state: FloatArray) -> ThermalFit | None:
    """The learnt thermal part, or None while training."""
    if state[PHASE] < 3.0:
        return None
    return ThermalFit(float(state[TAU]), float(state[GAIN]), float(state[SIGMA_R]))


def ready(state: FloatArray) -> bool:
    """Has training ended (the ambient profile may still be learning)?"""
    return bool(state[PHASE] >= 3.0)


def to_list(state: FloatArray) -> list[str]:
    """JSON-safe and exact: the vector as little-endian float64, base64; once trained only the
    header, the profile and the interim ambient (576 bytes, ~0.8 KB of JSON; 1,472 bytes, ~2.0 KB
    of JSON while training, whose sums are gone afterwards)."""
    used = state if state[PHASE] < 3.0 else state[:_FITTED_SIZE]
    return [packed_floats.pack(used)]


def from_list(values: object) -> FloatArray:
    """Inverse of :func:`to_list`; ValueError on anything else (another layout or version)."""
    if not isinstance(values, list) or len(values) != 1:
        raise ValueError("expected level: not a stored model state")
    stored = packed_floats.unpack(values[0], "expected level: stored model state")
    if stored.shape[0] not in (SIZE, _FITTED_SIZE, _FITTED_SIZE_V1):
        raise ValueError("expected level: state of another layout")
    version = stored[VERSION]
    if version not in _VERSIONS:
        raise ValueError("expected level: state of another version")
    fitted = {_FITTED_SIZE_V1: 1.0, _FITTED_SIZE: _VERSION}.get(stored.shape[0], version)
    if fitted != version:
        raise ValueError("expected level: state of another layout")
    if stored.shape[0] != SIZE and stored[PHASE] < 3.0:
        raise ValueError("expected level: a state in training must be whole")
    state = np.zeros(SIZE, dtype=np.float64)
    state[: stored.shape[0]] = stored
    # Version 1 had no interim ambient: its slots (zero, as after training) start it afresh.
    state[VERSION] = _VERSION
    return state


def handovers(state: FloatArray) -> int:
    """How often the profile has taken over from the interim ambient (a monitor whose baseline was
    learnt on interim residuals starts a new one then)."""
    # (While training, the slot holds a training sum.)
    return int(state[I_HANDOVERS]) if state[PHASE] >= 3.0 else 0


def uses_ambient(state: FloatArray) -> bool | None:
    """Did the model learn with an ambient (hall) sensor? None before its first reading."""
    return None if state[PHASE] == 0.0 else bool(state[HAS_AMBIENT])


def last_ambient(state: FloatArray) -> float | None:
    """The newest ambient (hall) reading the model has seen, or None."""
    return float(state[LAST_AMBIENT]) if state[HAS_AMBIENT] else None
