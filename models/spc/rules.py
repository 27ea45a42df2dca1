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

Evaluation is bit-parallel: per block of up to 32 readings, a vectorised loop turns each zone
and direction test into one bit per reading (one integer word per test, the last 16 readings of
the previous block below them), and each rule is a handful of shifts, ANDs and ORs over those
words: a run of ``L`` is ``w & w << 1 & ... & w << (L - 1)``. That costs about 1 ns per reading
where a per-reading state machine of run counters cost about 12 (measured, ``benchmarks/bench_drift.py``).

State slice (:data:`SIZE` floats): the 16-bit histories of the zone and direction tests (integers
stored as floats), the previous reading and whether there is one.

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

from models.arrays import FloatArray, as_values
from models.numba_config import kernel

__all__ = ["RULE_PATTERNS", "RULE_POINTS", "SIZE", "init", "nelson_rules", "run", "run_rule1"]

# History words: bit 15 is the newest reading of the previous blocks, bit 0 the 16th newest.
H_POS: Final = 0  # z > 0
H_NEG: Final = 1  # z < 0
H_HI2: Final = 2  # z > 2
H_LO2: Final = 3  # z < -2
H_HI1: Final = 4  # z > 1
H_LO1: Final = 5  # z < -1
H_IN1: Final = 6  # |z| < 1
H_UP: Final = 7  # x > previous x
H_DOWN: Final = 8  # x < previous x
PREV_X: Final = 9
HAS_PREV: Final = 10
SIZE: Final = 11

RULE_POINTS: Final = (1, 9, 6, 14, 3, 5, 15, 8)
# Each rule's pattern in words, for alert messages (the table above).
RULE_PATTERNS: Final = (
    "a point beyond 3 sigma",
    "9 points in a row on one side of the centre line",
    "6 points in a row steadily rising or falling",
    "14 points in a row alternating up and down",
    "2 of 3 points beyond 2 sigma on one side",
    "4 of 5 points beyond 1 sigma on one side",
    "15 points in a row within 1 sigma of the centre line",
    "8 points in a row beyond 1 sigma, none within",
)
_HIST: Final = 16  # bits of history below a block: the longest pattern (rule 7) looks 14 back
_BLOCK: Final = 32  # readings per word: history + block stay below bit 63 after any shift
_KEEP: Final = (1 << _HIST) - 1


@kernel
def init(state: FloatArray, base: int) -> None:
    for i in range(SIZE):
        state[base + i] = 0.0


@kernel
def _run_of(w: int, length: int) -> int:
    """Bits whose reading ends a run of ``length`` set bits (this one and the ``length - 1`` before)."""
    out = w
    for k in range(1, length):
        out &= w << k
    return out


@kernel
def _any_of(w: int, length: int) -> int:
    """Bits with a set bit among this reading and the ``length - 1`` before."""
    out = w
    for k in range(1, length):
        out |= w << k
    return out


Words = tuple[int, int, int, int, int, int, int, int, int, int]


@kernel
def _add_bits(w: Words, i: int, x: float, xp: float, center: float, inv_sigma: float) -> Words:
    """Reading ``i`` of a block (``xp`` the one before it) into the zone and direction words."""
    z = (x - center) * inv_sigma
    return (
        w[0] | int(z > 0.0) << i,
        w[1] | int(z < 0.0) << i,
        w[2] | int(z > 2.0) << i,
        w[3] | int(z < -2.0) << i,
        w[4] | int(z > 1.0) << i,
        w[5] | int(z < -1.0) << i,
        w[6] | int(abs(z) < 1.0) << i,
        w[7] | int(abs(z) > 3.0) << i,
        w[8] | int(x > xp) << i,
        w[9] | int(x < xp) << i,
    )


@kernel
def _full_block(values: FloatArray, s: int, center: float, inv_sigma: float, prev: float) -> Words:
    """A block of exactly :data:`_BLOCK`: the constant trip count lets LLVM unroll and vectorise
    the loop (1.5 ns per reading instead of 2.2 with a variable count)."""
    v = values[s : s + _BLOCK]
    w = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    for i in range(_BLOCK):
        w = _add_bits(w, i, v[i], v[i - 1] if i > 0 else prev, center, inv_sigma)
    return w


@kernel
def _tail_block(values: FloatArray, s: int, m: int, center: float, inv_sigma: float, prev: float) -> Words:
    w = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    for i in range(m):
        w = _add_bits(w, i, values[s + i], values[s + i - 1] if i > 0 else prev, center, inv_sigma)
    return w


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
    fired, bit ``r - 1`` for rule ``r``.
    """
    pos = int(state[base + H_POS])
    neg = int(state[base + H_NEG])
    hi2 = int(state[base + H_HI2])
    lo2 = int(state[base + H_LO2])
    hi1 = int(state[base + H_HI1])
    lo1 = int(state[base + H_LO1])
    in1 = int(state[base + H_IN1])
    up = int(state[base + H_UP])
    down = int(state[base + H_DOWN])
    prev = state[base + PREV_X]
    has_prev = state[base + HAS_PREV] != 0.0
    n = values.shape[0]
    found = 0
    s = 0
    while s < n:
        m = min(_BLOCK, n - s)
        # Zone and direction tests as bit words; a fixed-shape loop LLVM vectorises.
        # Without a previous reading the first comparison is with itself: no direction (a tie).
        first_prev = prev if has_prev else values[s]
        if m == _BLOCK:
            words = _full_block(values, s, center, inv_sigma, first_prev)
        else:
            words = _tail_block(values, s, m, center, inv_sigma, first_prev)
        b_pos, b_neg, b_hi2, b_lo2, b_hi1, b_lo1, b_in1, b_out3, b_up, b_down = words
        prev = values[s + m - 1]
        has_prev = True
        pos = pos | b_pos << _HIST
        neg = neg | b_neg << _HIST
        hi2 = hi2 | b_hi2 << _HIST
        lo2 = lo2 | b_lo2 << _HIST
        hi1 = hi1 | b_hi1 << _HIST
        lo1 = lo1 | b_lo1 << _HIST
        in1 = in1 | b_in1 << _HIST
        up = up | b_up << _HIST
        down = down | b_down << _HIST
        alternating = (up & down << 1) | (down & up << 1)
        out1 = hi1 | lo1
        # 5 rising differences = 6 points; 12 alternations of 13 differences = 14 points.
        r2 = _run_of(pos, 9) | _run_of(neg, 9)
        r3 = _run_of(up, 5) | _run_of(down, 5)
        r4 = _run_of(alternating, 12)
        r5 = (hi2 & (hi2 << 1 | hi2 << 2)) | (lo2 & (lo2 << 1 | lo2 << 2))
        a, b, c, d = hi1 << 1, hi1 << 2, hi1 << 3, hi1 << 4
        r6 = hi1 & ((a & b & (c | d)) | (c & d & (a | b)))
        a, b, c, d = lo1 << 1, lo1 << 2, lo1 << 3, lo1 << 4
        r6 |= lo1 & ((a & b & (c | d)) | (c & d & (a | b)))
        r7 = _run_of(in1, 15)
        r8 = _run_of(out1, 8) & _any_of(hi1, 8) & _any_of(lo1, 8)
        window = ((1 << m) - 1) << _HIST
        r1 = b_out3 << _HIST
        any_rule = (r1 | r2 | r3 | r4 | r5 | r6 | r7 | r8) & window
        if any_rule != 0:
            for i in range(m):
                bit = _HIST + i
                if (any_rule >> bit) & 1 == 1:
                    out_index[found] = s + i
                    out_fired[found] = (
                        ((r1 >> bit) & 1)
                        | ((r2 >> bit) & 1) << 1
                        | ((r3 >> bit) & 1) << 2
                        | ((r4 >> bit) & 1) << 3
                        | ((r5 >> bit) & 1) << 4
                        | ((r6 >> bit) & 1) << 5
                        | ((r7 >> bit) & 1) << 6
                        | ((r8 >> bit) & 1) << 7
                    )
                    found += 1
        # Keep the newest 16 readings as the next block's history.
        pos = (pos >> m) & _KEEP
        neg = (neg >> m) & _KEEP
        hi2 = (hi2 >> m) & _KEEP
        lo2 = (lo2 >> m) & _KEEP
        hi1 = (hi1 >> m) & _KEEP
        lo1 = (lo1 >> m) & _KEEP
        in1 = (in1 >> m) & _KEEP
        up = (up >> m) & _KEEP
        down = (down >> m) & _KEEP
        s += m
    state[base + H_POS] = pos
    state[base + H_NEG] = neg
    state[base + H_HI2] = hi2
    state[base + H_LO2] = lo2
    state[base + H_HI1] = hi1
    state[base + H_LO1] = lo1
    state[base + H_IN1] = in1
    state[base + H_UP] = up
    state[base + H_DOWN] = down
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
