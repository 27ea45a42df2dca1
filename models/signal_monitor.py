"""All drift detectors and SPC rules of one signal, over a batch of readings, in one numba pass.

A signal's monitor state is one float64 vector (:func:`new_state`), kept per signal in the machine's
table state and serialised with :func:`to_list`/:func:`from_list`, so a restart resumes every
detector exactly where it stopped (a test feeds a stream in two halves across a JSON round trip and
gets the same detections).

How a reading is judged:

1. **Baseline.** The first ``baseline_n`` readings define the in-control mean ``mu0``, the overall
   standard deviation ``sigma`` and the I-MR sigma ``MR-bar / 1.128``; they are frozen in the state
   (:func:`rebaseline` starts a new baseline on demand). Nothing is detected during the baseline.
   In ``residual`` mode the monitored series is ``x - ref`` instead of ``x``: the difference from an
   exponentially weighted reference of the readings before (half-life ``reference_half_life``
   readings, seeded by the first reading), for signals whose level wanders slowly by design.
2. **Drift detectors** run on ``z = (x - mu0) / sigma``, so their parameters are in sigma units and
   one default serves signals of any scale: Page-Hinkley and ADWIN (river's semantics), two-sided
   CUSUM and an EWMA chart (:mod:`models.drift`).
3. **SPC rules**: the eight Nelson rules (:mod:`models.spc.rules`) on the individuals chart, whose
   sigma is the I-MR sigma or, for autocorrelated high-rate signals, the overall sigma
   (``rules_sigma``).

Detection codes (:data:`DETECTORS`): 0 Page-Hinkley, 1 CUSUM, 2 EWMA, 3 ADWIN, 4-11 Nelson rules
1-8. ``enabled`` is a bitmask over these codes; a disabled detector is not evaluated.

Per batch the kernel reports, for each code, how many readings were detections, the first and last
of them (indices into the batch), the value at the last one and the detector's estimate of the
shift there, in sigma. That is all an alert needs, whatever the batch size, so nothing is allocated
per detection.

A condition is *quiet* (its alert may resolve) once the detector has not fired for
``resolve_after`` readings and the EWMA estimate of the shift is back within ``resolve_band``
sigma: a Page-Hinkley or ADWIN detector re-learns its reference after a detection and falls
silent under a persisting shift, so silence alone would resolve an alert whose drift is still there.
"""

from __future__ import annotations

import functools
import math
import struct
import threading
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple, get_args

import numba
import numpy as np

from models import packed_floats
from models.arrays import FloatArray, IntArray, as_values
from models.drift import adwin, cusum, ewma_chart, page_hinkley
from models.finite import FLUSH_EVERY, all_finite, flushed
from models.json_floats import decode_number, encode_number
from models.numba_config import SealedKernel, inline_kernel, kernel
from models.spc import rules

__all__ = [
    "ADWIN_BUCKET_BYTES",
    "DETECTORS",
    "MODES",
    "N_CODES",
    "Detection",
    "MonitorParams",
    "adwin_rows",
    "baseline",
    "ewma_shift",
    "from_list",
    "new_state",
    "params_from_vector",
    "quiet_codes",
    "rebaseline",
    "to_list",
    "update",
]

Detector = Literal[
    "page_hinkley",
    "cusum",
    "ewma",
    "adwin",
    "rule1",
    "rule2",
    "rule3",
    "rule4",
    "rule5",
    "rule6",
    "rule7",
    "rule8",
]
# The order is the bit and code order in the state vector: append, never reorder.
DETECTORS: Final[tuple[Detector, ...]] = get_args(Detector)
N_CODES: Final = len(DETECTORS)
_F8: Final = np.dtype(np.float64)
_RULE0: Final = 4

# State layout: header, the detectors' slices, the last-hit table, ADWIN last (its unused rows are
# zero and dropped by to_list).
N: Final = 0
BASE_N: Final = 1
BASE_MEAN: Final = 2
BASE_M2: Final = 3
BASE_MR: Final = 4
BASE_PREV: Final = 5
MU0: Final = 6
SIGMA: Final = 7
SIGMA_MR: Final = 8
MAX_BUCKETS: Final = 9
REF: Final = 10  # residual mode: the EW reference level
REF_SEEDED: Final = 11
EWMA_AT: Final = 12
CUSUM_AT: Final = EWMA_AT + ewma_chart.SIZE
PH_AT: Final = CUSUM_AT + cusum.SIZE
RULES_AT: Final = PH_AT + page_hinkley.SIZE
LAST_HIT_AT: Final = RULES_AT + rules.SIZE
ADWIN_AT: Final = LAST_HIT_AT + N_CODES

# Parameter vector layout (MonitorParams.vector()).
P_BASELINE_N: Final = 0
P_ENABLED: Final = 1
P_RULES_MR: Final = 2
P_PH_MIN: Final = 3
P_PH_DELTA: Final = 4
P_PH_THRESHOLD: Final = 5
P_PH_ALPHA: Final = 6
P_PH_MODE: Final = 7
P_CUSUM_K: Final = 8
P_CUSUM_H: Final = 9
P_EWMA_LAMBDA: Final = 10
P_EWMA_L: Final = 11
P_ADWIN_DELTA: Final = 12
P_ADWIN_CLOCK: Final = 13
P_ADWIN_BUCKETS: Final = 14
P_ADWIN_MIN_LEN: Final = 15
P_ADWIN_GRACE: Final = 16
P_RESOLVE_AFTER: Final = 17
P_RESOLVE_BAND: Final = 18
P_MODE: Final = 19
P_REF_ALPHA: Final = 20
N_PARAMS: Final = 21

MODES: Final = ("level", "residual")

# hits[code, :]: count, first index, last index, value at last, shift (sigma) at last.
H_COUNT: Final = 0
H_FIRST: Final = 1
H_LAST: Final = 2
H_VALUE: Final = 3
H_SHIFT: Final = 4


@dataclass(frozen=True, slots=True)
class MonitorParams:
    """Numeric parameters of one signal's monitor (see :class:`models.monitoring_config.MonitorSettings`)."""

    baseline_n: int = 200
    enabled: int = (1 << N_CODES) - 1
    rules_use_moving_range: bool = True
    ph_min_instances: int = 30
    ph_delta: float = 0.5
    ph_threshold: float = 50.0
    ph_alpha: float = 1.0
    ph_mode: str = "both"
    cusum_k: float = 0.5
    cusum_h: float = 5.0
    ewma_lambda: float = 0.2
    ewma_L: float = 3.0
    adwin_delta: float = 0.002
    adwin_clock: int = 32
    adwin_max_buckets: int = 5
    adwin_min_window_length: int = 5
    adwin_grace_period: int = 10
    resolve_after: int = 300
    resolve_band: float = 1.0
    mode: str = "level"
    reference_half_life: float = 3600.0  # readings; residual mode only

    def reference_alpha(self) -> float:
        """Weight of a new reading in the EW reference: its half-life is ``reference_half_life``."""
        return 1.0 - float(0.5 ** (1.0 / self.reference_half_life))

    def vector(self) -> FloatArray:
        if self.baseline_n < 2:
            raise ValueError("baseline_n: at least 2 readings are needed for a sigma")
        if not 2 <= self.adwin_max_buckets <= 64 or self.adwin_clock < 1:
            raise ValueError("adwin_max_buckets must lie in [2, 64] and adwin_clock be >= 1")
        if self.mode not in MODES or not self.reference_half_life >= 1.0:
            raise ValueError(f"mode must be one of {MODES} and reference_half_life >= 1 reading")
        return np.array(
            [
                self.baseline_n,
                self.enabled,
                float(self.rules_use_moving_range),
                self.ph_min_instances,
                self.ph_delta,
                self.ph_threshold,
                self.ph_alpha,
                page_hinkley.MODES[self.ph_mode],
                self.cusum_k,
                self.cusum_h,
                self.ewma_lambda,
                self.ewma_L,
                self.adwin_delta,
                self.adwin_clock,
                self.adwin_max_buckets,
                self.adwin_min_window_length,
                self.adwin_grace_period,
                self.resolve_after,
                self.resolve_band,
                float(MODES.index(self.mode)),
                self.reference_alpha(),
            ],
            dtype=np.float64,
        )


class Detection(NamedTuple):
    """One detector's detections in a batch (indices into the batch).

    A named tuple rather than a frozen dataclass: building one costs ~0.5 us instead of ~1.3 us,
    which at a frame of 500 readings with a few detections was 2-4 ns per reading. ``count``
    shadows ``tuple.count`` on purpose (the field is the public name).
    """

    detector: str
    count: int  # type: ignore[assignment]
    first: int
    last: int
    value: float  # the reading at ``last``
    shift_sigma: float  # the detector's estimate of the shift at ``last``, in baseline sigma


# ADWIN's rows are capped so that a signal's serialised state stays small (the state lives in a
# Faust table as JSON; the budget is 2 KB per machine and signal): the buckets in use take at most
# this many bytes before base64 (4/3 of it in the JSON). A row holds up to max_buckets buckets of
# two float64 (total, variance) plus its count.
ADWIN_BUCKET_BYTES: Final = 640


def adwin_rows(max_buckets: int) -> int:
    """Rows the monitor's ADWIN keeps for ``max_buckets``: 16 for 2, 11 for 3, 7 for 5, then fewer.

    The window then holds up to about ``max_buckets * 2**rows`` readings (2: ~130k, 3: ~6k,
    5: ~640); beyond that the oldest bucket is forgotten (see :mod:`models.drift.adwin`).
    """
    return int(_adwin_rows(max_buckets))


@inline_kernel
def _adwin_rows(max_buckets: int) -> int:
    return max(2, min(adwin.MAX_ROWS, ADWIN_BUCKET_BYTES // (8 * (1 + 2 * max_buckets))))


@functools.lru_cache(maxsize=64)  # few distinct values; every state check asks (per batch and series)
def _size(max_buckets: int) -> int:
    return ADWIN_AT + adwin.size(max_buckets, adwin_rows(max_buckets))


@kernel
def _size_in_kernel(max_buckets: int) -> int:
    """:func:`_size` for the kernel's own checks (the Python call cost 0.4 us a batch)."""
    rows = _adwin_rows(max_buckets)
    return ADWIN_AT + adwin.HEADER + rows * (2 * max_buckets + 4)


@kernel
def _reset_detectors(state: FloatArray, max_buckets: int, max_rows: int) -> None:
    ewma_chart.init(state, EWMA_AT)
    cusum.init(state, CUSUM_AT)
    page_hinkley.init(state, PH_AT)
    rules.init(state, RULES_AT)
    adwin.init(state, ADWIN_AT, max_buckets, max_rows)


@kernel
def _reset_baseline(state: FloatArray) -> None:
    for i in range(BASE_N, MAX_BUCKETS):
        state[i] = 0.0
    state[REF] = 0.0
    state[REF_SEEDED] = 0.0


@kernel
def _record(hits: FloatArray, code: int, i: int, x: float, shift: float) -> None:
    if hits[code, H_COUNT] == 0.0:
        hits[code, H_FIRST] = i
    hits[code, H_COUNT] += 1.0
    hits[code, H_LAST] = i
    hits[code, H_VALUE] = x
    hits[code, H_SHIFT] = shift


@kernel
def _baseline_kernel(state: FloatArray, values: FloatArray, baseline_n: float) -> int:
    """Fold readings into the baseline until it is complete; returns how many readings it took."""
    i = 0
    while i < values.shape[0] and state[BASE_N] < baseline_n:
        # Welford over the baseline, plus the sum of moving ranges.
        x = values[i]
        bn = state[BASE_N] + 1.0
        d = x - state[BASE_MEAN]
        state[BASE_MEAN] += d / bn
        state[BASE_M2] += d * (x - state[BASE_MEAN])
        if bn > 1.0:
            state[BASE_MR] += abs(x - state[BASE_PREV])
        state[BASE_PREV] = x
        state[BASE_N] = bn
        i += 1
        if bn >= baseline_n:
            mu0 = state[BASE_MEAN]
            # A constant baseline (a quantised sensor) would give sigma 0: floor it at a relative
            # epsilon, so any real change is a detection rather than a division by zero.
            floor = 1e-9 * max(1.0, abs(mu0))
            state[MU0] = mu0
            state[SIGMA] = max(math.sqrt(state[BASE_M2] / (bn - 1.0)), floor)
            state[SIGMA_MR] = max(state[BASE_MR] / (bn - 1.0) / 1.128, floor)
    state[N] += i
    return i


@kernel
def _residuals(state: FloatArray, values: FloatArray, alpha: float, out: FloatArray) -> None:
    """``out[i] = x[i] - ref`` against the EW reference before ``x[i]`` (seeded by the first reading)."""
    ref = state[REF]
    if state[REF_SEEDED] == 0.0 and values.shape[0] > 0:
        ref = values[0]
        state[REF_SEEDED] = 1.0
    keep = 1.0 - alpha
    n = values.shape[0]
    # Readings of exactly 0 would leave ref stuck at a subnormal (models.finite: why).
    for block in range(0, n, FLUSH_EVERY):
        for i in range(block, min(block + FLUSH_EVERY, n)):
            x = values[i]
            out[i] = x - ref
            ref = keep * ref + alpha * x
        ref = flushed(ref)
    state[REF] = ref


@kernel
def _drift_pass(
    state: FloatArray,
    z: FloatArray,
    p: FloatArray,
    enabled: int,
    w_out: FloatArray,
    shift_out: FloatArray,
    flags: IntArray,
) -> None:
    """EWMA, then CUSUM, then Page-Hinkley, each in its own loop over the chunk.

    Detections go out as bits per reading (``flags[i]``: bit ``code``) and the CUSUM shift estimate
    per reading, written unconditionally: a store per reading is cheaper than a branch into
    bookkeeping that makes LLVM spill the detectors' registers (15 ns a reading with the
    bookkeeping inside, about 5 without). One loop per detector, not one for all three: together
    they carry about 25 values, more than the 16 vector registers of an AVX2 core, so LLVM spilled
    and reloaded some on every reading; apart, each loop is bound only by its own short chain
    (three detectors 16 -> 12 ns a reading on the AMD EPYC of session 22, the same bits).
    """
    lam, limit = p[P_EWMA_LAMBDA], p[P_EWMA_L]
    ewma_on = (enabled >> 2) & 1
    w, decay = state[EWMA_AT + ewma_chart.W], state[EWMA_AT + ewma_chart.DECAY]
    n = z.shape[0]
    for block in range(0, n, FLUSH_EVERY):
        for i in range(block, min(block + FLUSH_EVERY, n)):
            # The EWMA always runs: its value is every detector's shift estimate and the resolution
            # rule.
            w, decay, beyond = ewma_chart.step(w, decay, z[i], lam, limit)
            w_out[i] = w
            flags[i] = int(beyond) * ewma_on << 2
        # Readings back at exactly mu0 (a quantised sensor) decay w towards 0: models.finite, why.
        w = flushed(w)
    state[EWMA_AT + ewma_chart.W], state[EWMA_AT + ewma_chart.DECAY] = w, decay
    if (enabled >> 1) & 1 == 1:
        _cusum_pass(state, z, p[P_CUSUM_K], p[P_CUSUM_H], shift_out, flags)
    if enabled & 1 == 1:
        _page_hinkley_pass(state, z, p, flags)


@inline_kernel
def _cusum_pass(
    state: FloatArray, z: FloatArray, k: float, h: float, shift_out: FloatArray, flags: IntArray
) -> None:
    at = CUSUM_AT
    hi, lo, n_hi, n_lo = (
        state[at + cusum.HI],
        state[at + cusum.LO],
        state[at + cusum.N_HI],
        state[at + cusum.N_LO],
    )
    for i in range(z.shape[0]):
        hi, lo, n_hi, n_lo, shift = cusum.step(hi, lo, n_hi, n_lo, z[i], k, h)
        shift_out[i] = shift
        flags[i] |= int(shift != 0.0) << 1
    state[at + cusum.HI], state[at + cusum.LO], state[at + cusum.N_HI], state[at + cusum.N_LO] = (
        hi,
        lo,
        n_hi,
        n_lo,
    )


@inline_kernel
def _page_hinkley_pass(state: FloatArray, z: FloatArray, p: FloatArray, flags: IntArray) -> None:
    min_n, delta, thr, alpha = p[P_PH_MIN], p[P_PH_DELTA], p[P_PH_THRESHOLD], p[P_PH_ALPHA]
    mode = int(p[P_PH_MODE])
    pn, mean, s_inc, s_dec, min_inc, max_dec, det = page_hinkley.load(state, PH_AT)
    for i in range(z.shape[0]):
        pn, mean, s_inc, s_dec, min_inc, max_dec, det = page_hinkley.step(
            pn, mean, s_inc, s_dec, min_inc, max_dec, det, z[i], min_n, delta, thr, alpha, mode
        )
        flags[i] |= int(det != 0.0)
    page_hinkley.store(state, PH_AT, (pn, mean, s_inc, s_dec, min_inc, max_dec, det))


@kernel
def _record_flags(
    state: FloatArray,
    flags: IntArray,
    w: FloatArray,
    shift: FloatArray,
    raw: FloatArray,
    hits: FloatArray,
    lo: int,
) -> None:
    """The drift pass's detection bits into ``hits`` (a vectorised test skips quiet stretches)."""
    any_bits = 0
    for i in range(flags.shape[0]):
        any_bits |= flags[i]
    if any_bits == 0:
        return
    for i in range(flags.shape[0]):
        f = flags[i]
        if f == 0:
            continue
        if f & 1:
            _record(hits, 0, lo + i, raw[i], w[i])
        if f & 2:
            state[CUSUM_AT + cusum.SHIFT] = shift[i]
            _record(hits, 1, lo + i, raw[i], shift[i])
        if f & 4:
            _record(hits, 2, lo + i, raw[i], w[i])


_CHUNK: Final = 2048


@kernel
def _monitor_kernel(
    state: FloatArray, xs: FloatArray, raw: FloatArray, start: int, p: FloatArray, hits: FloatArray
) -> None:
    """The detection pass over ``xs[start:]`` (the monitored series: readings or residuals).

    Per chunk (kept in L1/L2): z once, then EWMA, CUSUM and Page-Hinkley (:func:`_drift_pass`), ADWIN in its
    own loop (its bucket code would otherwise take the registers the other detectors' state lives
    in: one loop over everything was measured at ~110 ns/reading), then the rules. Detections
    are written to ``hits`` with indices into the batch; ``raw`` supplies the reading's value.
    """
    enabled = int(p[P_ENABLED])
    mu0 = state[MU0]
    inv_sigma = 1.0 / state[SIGMA]
    inv_rules = 1.0 / (state[SIGMA_MR] if p[P_RULES_MR] != 0.0 else state[SIGMA])
    mask = (enabled >> _RULE0) & 0xFF
    adwin_on = (enabled >> 3) & 1 == 1
    a_delta, a_clock, a_buckets = p[P_ADWIN_DELTA], int(p[P_ADWIN_CLOCK]), int(p[P_ADWIN_BUCKETS])
    a_min, a_grace = p[P_ADWIN_MIN_LEN], p[P_ADWIN_GRACE]
    n = xs.shape[0]
    chunk = _CHUNK if n - start > _CHUNK else n - start
    # Two allocations instead of six: each costs ~50 ns, a tenth of a ns per reading at 500.
    scratch = np.empty(3 * chunk)
    z, w, shifts = scratch[:chunk], scratch[chunk : 2 * chunk], scratch[2 * chunk :]
    iscratch = np.empty(3 * chunk, dtype=np.int64)
    flags, idx, fired = iscratch[:chunk], iscratch[chunk : 2 * chunk], iscratch[2 * chunk :]
    lo = start
    while lo < n:
        hi = min(lo + chunk, n)
        m = hi - lo
        xc = xs[lo:hi]
        rc = raw[lo:hi]
        zc = z[:m]
        wc = w[:m]
        for i in range(m):
            zc[i] = (xc[i] - mu0) * inv_sigma
        _drift_pass(state, zc, p, enabled, wc, shifts, flags)
        _record_flags(state, flags[:m], wc, shifts, rc, hits, lo)
        if adwin_on:
            found = adwin.run(state, ADWIN_AT, zc, a_delta, a_clock, a_buckets, a_min, a_grace, idx)
            for k in range(found):
                _record(hits, 3, lo + idx[k], rc[idx[k]], wc[idx[k]])
        if mask == 1:
            found = rules.run_rule1(xc, mu0, inv_rules, idx, fired)
        elif mask != 0:
            found = rules.run(state, RULES_AT, xc, mu0, inv_rules, idx, fired)
        else:
            found = 0
        for k in range(found):
            bits = fired[k] & mask
            i = idx[k]
            zr = (xc[i] - mu0) * inv_rules
            for r in range(8):
                if (bits >> r) & 1 == 1:
                    _record(hits, _RULE0 + r, lo + i, rc[i], zr)
        lo = hi
    # Reading number of each code's last detection, for the resolution rule.
    before = state[N]
    for code in range(N_CODES):
        if hits[code, H_COUNT] > 0.0:
            state[LAST_HIT_AT + code] = before + (hits[code, H_LAST] - start + 1.0)
    state[N] = before + (n - start)


# The wrapper's buffer (one per thread, :data:`_LOCAL`): per code hit, in code order, six slots
# ``code, count, first, last`` (int64 bits) and ``value, shift`` (float64), read back with one
# :data:`_OUT_ROWS` struct; the kernel's per-code table sits behind them.
_ROW: Final = 6
_OUT_SIZE: Final = N_CODES * (_ROW + 5)
# ``_OUT_ROWS[k]`` reads k rows as one flat tuple of Python ints and floats: ~0.4 us for a batch's
# usual five, where a structured numpy view and its tolist() took ~1.4 us on this Intel machine
# (native byte order and standard sizes: the kernel writes the buffer natively).
_OUT_ROWS: Final = tuple(struct.Struct("=" + "qqqqdd" * k) for k in range(N_CODES + 1))
# The output buffer, one per thread (the kernel releases the GIL, so threads may be in it at once):
# update() copies everything out of it before it returns, and a new array per call cost ~0.25-0.5 us.
_LOCAL: Final = threading.local()


@kernel
def _update_kernel(state: FloatArray, values: FloatArray, p: FloatArray, out: FloatArray) -> int:
    """One batch, start to end; the codes hit, or (state untouched) a negative :data:`_ERRORS` key.

    ``out`` (:data:`_OUT_SIZE` floats, uninitialised on entry) receives one row per code hit
    (:data:`_OUT_ROWS`), so the wrapper reads all their fields with one struct unpack and no per-field
    conversion.
    """
    if p.shape[0] != N_PARAMS:
        return -2
    if state.shape[0] <= ADWIN_AT:
        return -3
    if p[P_ADWIN_BUCKETS] != state[MAX_BUCKETS] or state.shape[0] != _size_in_kernel(int(state[MAX_BUCKETS])):
        return -3
    n = values.shape[0]
    if not all_finite(values):
        return -1
    hits = out[N_CODES * _ROW :].reshape((N_CODES, 5))
    hits[:, :] = 0.0
    xs = values
    if p[P_MODE] != 0.0:
        xs = np.empty(n)
        _residuals(state, values, p[P_REF_ALPHA], xs)
    start = 0
    if state[BASE_N] < p[P_BASELINE_N]:
        start = _baseline_kernel(state, xs, p[P_BASELINE_N])
    if start < n:
        _monitor_kernel(state, xs, values, start, p, hits)
    ints = out.view(np.int64)
    codes = 0
    for code in range(N_CODES):
        if hits[code, H_COUNT] > 0.0:
            at = codes * _ROW
            ints[at] = code
            ints[at + 1] = int(hits[code, H_COUNT])
            ints[at + 2] = int(hits[code, H_FIRST])
            ints[at + 3] = int(hits[code, H_LAST])
            out[at + 4] = hits[code, H_VALUE]
            out[at + 5] = hits[code, H_SHIFT]
            codes += 1
    return codes


def params_from_vector(vector: FloatArray) -> MonitorParams:
    """Enough of :class:`MonitorParams` back from its vector to create a state (the ADWIN layout)."""
    return MonitorParams(adwin_max_buckets=int(vector[P_ADWIN_BUCKETS]))


def new_state(params: MonitorParams) -> FloatArray:
    """The state of a signal that has seen no reading."""
    state = np.zeros(_size(params.adwin_max_buckets), dtype=np.float64)
    state[MAX_BUCKETS] = params.adwin_max_buckets
    _reset_detectors(state, params.adwin_max_buckets, adwin_rows(params.adwin_max_buckets))
    return state


def _check_state(state: object) -> FloatArray:
    if not isinstance(state, np.ndarray) or state.dtype != np.float64 or state.ndim != 1:
        raise ValueError("state: expected a 1-D float64 array from new_state()")
    if state.shape[0] < ADWIN_AT or state.shape[0] != _size(int(state[MAX_BUCKETS])):
        raise ValueError(f"state: wrong size {state.shape[0]} for its max_buckets")
    if not state.flags.c_contiguous or not state.flags.writeable:
        raise ValueError("state: must be C-contiguous and writable")
    return state


_ERRORS: Final = {
    -1: "values: values must be finite",
    -2: f"params: expected MonitorParams.vector(), a float64 array of {N_PARAMS}",
    -3: (
        "params: adwin_max_buckets differs from the state's, or the state has the wrong size; "
        "create a new state"
    ),
}


def _kernel_signatures() -> list[tuple[Any, ...]]:
    # Decoded frames are read-only views (numpy.frombuffer): both kinds of values are usual.
    array = numba.types.Array(numba.types.float64, 1, "C")
    frozen = numba.types.Array(numba.types.float64, 1, "C", readonly=True)
    return [(array, values_type, array, array) for values_type in (array, frozen)]


_SEALED: Final = SealedKernel(_update_kernel, _kernel_signatures)


def _checked_call(state: object, values: object, params: object, out: FloatArray) -> int:
    """The kernel behind full argument checks (clear errors), compiling its two specialisations once.

    :func:`update` calls the kernel directly, with compilation disabled: numba's dispatcher then
    checks the argument types itself, in C as part of the call (the same checks in Python cost
    ~0.4 us a call), and raises TypeError for anything else, which lands here.
    """
    checked_state = _check_state(state)
    if not (isinstance(params, np.ndarray) and params.dtype == _F8 and params.ndim == 1):
        raise ValueError(f"params: expected MonitorParams.vector(), a float64 array of {N_PARAMS}")
    # Valid but not the kernel's types (a strided params, a dtype spelled differently): a plain
    # C-contiguous float64 array, copied only if it has to be.
    checked = np.require(as_values(values), np.float64, ("C", "E"))
    vector = np.require(params, np.float64, ("C", "E"))
    _SEALED.seal()
    dispatcher: Any = _update_kernel
    return int(dispatcher(checked_state, checked, vector, out))


def update(state: FloatArray, values: FloatArray, params: FloatArray) -> list[Detection]:
    """Fold a batch of readings (oldest first) into ``state``; the detections, one entry per detector.

    ``params`` is :meth:`MonitorParams.vector` (build it once per configuration, not per batch). Its
    ``adwin_max_buckets`` must be the one the state was created with. Raises ValueError on
    non-finite readings, leaving the state untouched.
    """
    # At 500 readings a batch each microsecond of wrapper is 2 ns per reading: the thread's output
    # buffer, the kernel straight away (its dispatcher accepts only C-contiguous float64 vectors and
    # a writable state; anything else raises TypeError and takes the checked path), one struct unpack.
    try:
        out = _LOCAL.out
    except AttributeError:
        out = _LOCAL.out = np.empty(_OUT_SIZE)
    if _SEALED.ready:
        try:
            codes = _update_kernel(state, values, params, out)
        except TypeError:
            codes = _checked_call(state, values, params, out)
    else:
        codes = _checked_call(state, values, params, out)
    if codes <= 0:
        if codes < 0:
            raise ValueError(_ERRORS[codes])
        return []
    # tuple.__new__ skips the named tuple's Python-level __new__: half the cost per detection.
    make = tuple.__new__
    fields = iter(_OUT_ROWS[codes].unpack_from(out))
    rows = zip(*(fields,) * _ROW, strict=True)  # six at a time from the one flat tuple
    return [
        make(Detection, (DETECTORS[code], count, first, last, value, shift))
        for code, count, first, last, value, shift in rows
    ]


def baseline(state: FloatArray) -> tuple[float, float, float] | None:
    """``(mean, sigma, sigma_mr)`` of the frozen baseline, or None while it is being collected."""
    _check_state(state)
    if state[SIGMA] <= 0.0:
        return None
    return float(state[MU0]), float(state[SIGMA]), float(state[SIGMA_MR])


def rebaseline(state: FloatArray) -> None:
    """Start a new baseline from the next reading (limits recomputed on demand); detectors restart."""
    _check_state(state)
    _reset_baseline(state)
    buckets = int(state[MAX_BUCKETS])
    _reset_detectors(state, buckets, adwin_rows(buckets))


def quiet_codes(state: FloatArray, params: FloatArray) -> list[str]:
    """Detectors whose condition is over: silent for ``resolve_after`` readings, shift within the band."""
    _check_state(state)
    if abs(state[EWMA_AT + ewma_chart.W]) > params[P_RESOLVE_BAND]:
        return []
    n = state[N]
    after = params[P_RESOLVE_AFTER]
    return [DETECTORS[c] for c in range(N_CODES) if n - state[LAST_HIT_AT + c] >= after]


def ewma_shift(state: FloatArray) -> float:
    """The EWMA estimate of the current shift, in baseline sigma."""
    return float(state[EWMA_AT + ewma_chart.W])


_HEAD_END: Final = ADWIN_AT + adwin.HEADER


def to_list(state: FloatArray) -> list[float | str | None]:
    """JSON-safe, compact and exact form of a state.

    The header and the detectors' scalars are JSON numbers (exact: orjson and json write the shortest
    repr that round-trips); infinities (Page-Hinkley's empty minimum) become strings. ADWIN's
    buckets in use follow as one ``"b64:..."`` string of little-endian float64 (10.7 characters a
    float instead of about 20 as JSON numbers), unused rows and ring slack dropped.
    """
    _check_state(state)
    buckets = int(state[MAX_BUCKETS])
    packed = np.empty(adwin.packed_size(state, ADWIN_AT, buckets), dtype=np.float64)
    adwin.pack(state, ADWIN_AT, buckets, packed)
    head = state[:_HEAD_END]
    out: list[float | str | None] = head.tolist()
    # Only the few non-finite entries need a JSON spelling (mapping all ~60 cost ~10 us a write).
    for index in np.flatnonzero(~np.isfinite(head)).tolist():
        out[index] = encode_number(out[index])  # type: ignore[arg-type]  # still the float here
    out.append(packed_floats.pack(packed))
    return out


def from_list(values: list[float | str | None]) -> FloatArray:
    """Inverse of :func:`to_list`; raises ValueError on anything else (including other layouts)."""
    if not isinstance(values, list) or len(values) != _HEAD_END + 1:
        raise ValueError("values: not a signal monitor state of this layout")
    decoded = [decode_number(value, f"values[{index}]") for index, value in enumerate(values[:_HEAD_END])]
    buckets = decoded[MAX_BUCKETS]
    if buckets != math.floor(buckets) or not 2 <= buckets <= 64:
        raise ValueError("values: corrupt max_buckets")
    rows = adwin_rows(int(buckets))
    if decoded[ADWIN_AT + adwin.CAP_ROWS] != rows:
        raise ValueError("values: ADWIN row cap differs from this version's; start a new state")
    packed = packed_floats.unpack(values[_HEAD_END], "values: ADWIN buckets")
    state = np.zeros(_size(int(buckets)), dtype=np.float64)
    state[:_HEAD_END] = decoded
    if not adwin.unpack(state, ADWIN_AT, int(buckets), packed):
        raise ValueError("values: corrupt ADWIN buckets")
    return state
