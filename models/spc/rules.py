"""The eight Western Electric / Nelson run rules, evaluated one reading at a time in numba.

Readings are judged against a centre line and sigma (``z = (x - center) / sigma``). A rule fires on
the reading that completes its pattern, and again on every further reading that keeps it complete
(the alert layer deduplicates). Rules, as Nelson (1984) numbers them, with the points involved:

====  ==========================================================================  ======
rule  pattern                                                                     points
====  ==========================================================================  ======
1     one point beyond 3 sigma                                                    1
2     nine points in a row on the same side of the centre line                    9
3     six points in a row steadily increasing or steadily decreasing              6
4     fourteen points in a row alternating up and down                            14
5     two of three points beyond 2 sigma on the same side (this one among them)   3
6     four of five points beyond 1 sigma on the same side (this one among them)   5
7     fifteen points in a row within 1 sigma of the centre line                   15
8     eight points in a row beyond 1 sigma, on both sides, none within            8
====  ==========================================================================  ======

Rules 5 and 6 require the newest point to be one of those beyond the zone, so a pattern is
reported once at the point that makes it, not again at an inside point that follows. Equal
consecutive values break the runs of rules 3 and 4; a point exactly on the centre line breaks rule 2.

State slice (:data:`SIZE` floats): run lengths, last direction and the zone bitmasks (integers
stored as floats; :func:`run` works on them as int64 registers).

>>> import numpy as np
>>> hits = nelson_rules(np.array([0.0, 3.5, 0.0]), center=0.0, sigma=1.0)
>>> [int(i) for i in np.flatnonzero(hits[:, 0])]
[1]
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

from models.drift._arrays import FloatArray, as_values
from models.numba_config import kernel

__all__ = ["RULE_POINTS", "SIZE", "init", "nelson_rules", "run", "run_rule1"]

POS_RUN: Final = 0
NEG_RUN: Final = 1
INC_RUN: Final = 2
DEC_RUN: Final = 3
ALT_RUN: Final = 4
LAST_DIR: Final = 5
MASK2_HI: Final = 6
MASK2_LO: Final = 7
MASK1_HI: Final = 8
MASK1_LO: Final = 9
IN1_RUN: Final = 10
OUT1_RUN: Final = 11
SINCE_HI: Final = 12
SINCE_LO: Final = 13
PREV_X: Final = 14
HAS_PREV: Final = 15
SIZE: Final = 16

RULE_POINTS: Final = (1, 9, 6, 14, 3, 5, 15, 8)
# Side-seen counters saturate here ("long ago"), so rule 8 needs both sides inside its own run.
_LONG_AGO: Final = 1_000_000_000
# Rule 6: bit m is set for the 4-bit masks m with at least three bits set (the newest point is
# the fourth of the five).
_AT_LEAST_3_OF_4: Final = sum(1 << m for m in range(16) if bin(m).count("1") >= 3)


@kernel
def init(state: FloatArray, base: int) -> None:
    for i in range(SIZE):
        state[base + i] = 0.0
    state[base + SINCE_HI] = _LONG_AGO
    state[base + SINCE_LO] = _LONG_AGO


@kernel
def _zones(
    z: float,
    pos: int,
    neg: int,
    m2h: int,
    m2l: int,
    m1h: int,
    m1l: int,
    in1: int,
    out1: int,
    since_hi: int,
    since_lo: int,
) -> tuple[int, int, int, int, int, int, int, int, int, int, int]:
    """Rules 1, 2, 5-8 for one standardised point (branch-free); returns the bits fired and the state."""
    fired = int(abs(z) > 3.0)
    # Rule 2: same side (a point on the centre line breaks both runs).
    pos = (pos + 1) * int(z > 0.0)
    neg = (neg + 1) * int(z < 0.0)
    fired |= (int(pos >= 9) | int(neg >= 9)) << 1
    # Rules 5 and 6: k of the last n beyond a zone on one side, as bitmasks of the last n points
    # (bit 0 = this point). The newest point must be beyond the zone itself.
    hi2 = int(z > 2.0)
    lo2 = int(z < -2.0)
    m2h = ((m2h << 1) | hi2) & 0b111
    m2l = ((m2l << 1) | lo2) & 0b111
    fired |= ((hi2 & int(m2h & 0b110 != 0)) | (lo2 & int(m2l & 0b110 != 0))) << 4
    hi1 = int(z > 1.0)
    lo1 = int(z < -1.0)
    m1h = ((m1h << 1) | hi1) & 0b11111
    m1l = ((m1l << 1) | lo1) & 0b11111
    # 4 of 5 with bit 0 set: the other four bits have at least three set (a 16-bit lookup word).
    fired |= ((hi1 & (_AT_LEAST_3_OF_4 >> (m1h >> 1))) | (lo1 & (_AT_LEAST_3_OF_4 >> (m1l >> 1)))) << 5
    # Rule 7: hugging the centre line (often: limits computed from a mixed or stratified baseline).
    in1 = (in1 + 1) * int(abs(z) < 1.0)
    fired |= int(in1 >= 15) << 6
    # Rule 8: a run outside 1 sigma with points on both sides (a mixture).
    out1 = (out1 + 1) * (hi1 | lo1)
    since_hi = min(since_hi + 1, _LONG_AGO) * (1 - hi1)
    since_lo = min(since_lo + 1, _LONG_AGO) * (1 - lo1)
    fired |= (int(out1 >= 8) & int(since_hi < 8) & int(since_lo < 8)) << 7
    return fired, pos, neg, m2h, m2l, m1h, m1l, in1, out1, since_hi, since_lo


@kernel
def run(
    state: FloatArray,
    base: int,
    values: FloatArray,
    center: float,
    inv_sigma: float,
    out_index: npt.NDArray[np.int64],
    out_fired: npt.NDArray[np.int64],
) -> int:
    """Judge ``values`` in order with ``z = (x - center) * inv_sigma``; returns how many readings fired.

    For the ``k``-th such reading, ``out_index[k]`` is its index and ``out_fired[k]`` the rules it
    fired, bit ``r - 1`` for rule ``r``. Every counter and zone bitmask is an int64 local for the
    whole batch (loaded from and stored to the float state once), so a reading costs a few
    comparisons and integer operations and no float/int conversion.
    """
    pos = int(state[base + POS_RUN])
    neg = int(state[base + NEG_RUN])
    inc = int(state[base + INC_RUN])
    dec = int(state[base + DEC_RUN])
    alt = int(state[base + ALT_RUN])
    last_dir = int(state[base + LAST_DIR])
    m2h = int(state[base + MASK2_HI])
    m2l = int(state[base + MASK2_LO])
    m1h = int(state[base + MASK1_HI])
    m1l = int(state[base + MASK1_LO])
    in1 = int(state[base + IN1_RUN])
    out1 = int(state[base + OUT1_RUN])
    since_hi = int(state[base + SINCE_HI])
    since_lo = int(state[base + SINCE_LO])
    prev = state[base + PREV_X]
    has_prev = state[base + HAS_PREV] != 0.0
    found = 0
    start = 0
    if not has_prev and values.shape[0] > 0:
        # The very first reading has no difference: judge it with the difference-free rules only.
        start = 1
        fired, pos, neg, m2h, m2l, m1h, m1l, in1, out1, since_hi, since_lo = _zones(
            (values[0] - center) * inv_sigma, pos, neg, m2h, m2l, m1h, m1l, in1, out1, since_hi, since_lo
        )
        prev = values[0]
        has_prev = True
        if fired != 0:
            out_index[0] = 0
            out_fired[0] = fired
            found = 1
    for i in range(start, values.shape[0]):
        x = values[i]
        # Branch-free: on noisy data every comparison below is a coin flip, and a mispredicted
        # branch costs more than all the arithmetic; comparisons become 0/1 integers instead.
        fired, pos, neg, m2h, m2l, m1h, m1l, in1, out1, since_hi, since_lo = _zones(
            (x - center) * inv_sigma, pos, neg, m2h, m2l, m1h, m1l, in1, out1, since_hi, since_lo
        )
        # Rules 3 and 4: directions of consecutive differences (a tie breaks both).
        up = int(x > prev)
        down = int(x < prev)
        direction = up - down
        inc = (inc + 1) * up
        dec = (dec + 1) * down
        # 5 rising differences = 6 points; 13 alternating differences = 14 points.
        alt = (up | down) * (1 + alt * int(direction == -last_dir))
        last_dir = direction
        fired |= (int(inc >= 5) | int(dec >= 5)) << 2 | int(alt >= 13) << 3
        prev = x
        if fired != 0:
            out_index[found] = i
            out_fired[found] = fired
            found += 1
    state[base + POS_RUN] = pos
    state[base + NEG_RUN] = neg
    state[base + INC_RUN] = inc
    state[base + DEC_RUN] = dec
    state[base + ALT_RUN] = alt
    state[base + LAST_DIR] = last_dir
    state[base + MASK2_HI] = m2h
    state[base + MASK2_LO] = m2l
    state[base + MASK1_HI] = m1h
    state[base + MASK1_LO] = m1l
    state[base + IN1_RUN] = in1
    state[base + OUT1_RUN] = out1
    state[base + SINCE_HI] = since_hi
    state[base + SINCE_LO] = since_lo
    state[base + PREV_X] = prev
    state[base + HAS_PREV] = 1.0 if has_prev else 0.0
    return found


@kernel
def run_rule1(
    values: FloatArray,
    center: float,
    inv_sigma: float,
    out_index: npt.NDArray[np.int64],
    out_fired: npt.NDArray[np.int64],
) -> int:
    """Rule 1 alone (the sensor default): stateless, one comparison per reading."""
    found = 0
    for i in range(values.shape[0]):
        if abs((values[i] - center) * inv_sigma) > 3.0:
            out_index[found] = i
            out_fired[found] = 1
            found += 1
    return found


@kernel
def _rules_kernel(
    state: FloatArray, values: FloatArray, center: float, sigma: float, out: npt.NDArray[np.bool_]
) -> None:
    n = values.shape[0]
    index = np.empty(n, dtype=np.int64)
    fired = np.empty(n, dtype=np.int64)
    found = run(state, 0, values, center, 1.0 / sigma, index, fired)
    for k in range(found):
        for r in range(8):
            out[index[k], r] = (fired[k] >> r) & 1 == 1


def nelson_rules(values: FloatArray, center: float, sigma: float) -> npt.NDArray[np.bool_]:
    """``out[i, r - 1]`` is True when rule ``r`` fires at reading ``i`` (a fresh chart over ``values``)."""
    values = as_values(values)
    if not (math.isfinite(center) and math.isfinite(sigma) and sigma > 0):
        raise ValueError("center must be finite and sigma positive")
    state = np.empty(SIZE, dtype=np.float64)
    init(state, 0)
    out = np.zeros((values.shape[0], 8), dtype=np.bool_)
    _rules_kernel(state, values, float(center), float(sigma), out)
    return out
