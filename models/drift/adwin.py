"""ADWIN (adaptive windowing, Bifet and Gavaldà 2007) with river's semantics, in fixed-size numba state.

Written from the algorithm and checked against ``river.drift.ADWIN`` (same parameters ``delta``,
``clock``, ``max_buckets``, ``min_window_length``, ``grace_period``), whose detections it reproduces
exactly on the same series (a test checks this). The details that matter for equality:

- The window is an exponential histogram: row ``r`` holds up to ``max_buckets + 1`` buckets of
  ``2**r`` readings each, oldest first; when a row fills, its two oldest buckets merge into one
  bucket appended to row ``r + 1`` (the sum of squared deviations combines with Chan's formula).
- Every ``clock``-th reading, once the window is wider than ``grace_period``, every cut between
  buckets is tested from the oldest bucket on; on a cut the oldest bucket is dropped and the scan
  restarts, until no cut holds. The cut test is Hoeffding/Bernstein's bound
  ``|mu0 - mu1| > sqrt(2 m v d') + 2/3 d' m`` with ``d' = ln(2 ln(W) / delta)``,
  ``m = 1/(n0 - L + 1) + 1/(n1 - L + 1)``, ``v`` the window variance and ``L = min_window_length``.
- After a detection the detector starts afresh at the next reading (river resets on ``update``).

Speed: each row is a ring buffer (a merge moves a head index instead of shifting the row), and
:func:`run` keeps the window's width, total and variance in registers across a batch, touching the
state array only to append a reading to row 0 and, every second reading on average, to merge.

Memory is bounded by ``max_rows`` (stored in the state): windows of about
``max_buckets * 2**max_rows`` readings. When the top row fills, its oldest bucket is forgotten: the
window stops growing instead of overflowing. That is the only departure from river, and only for
windows wider than the cap (river's window grows without bound while no drift is detected);
:data:`MAX_ROWS` (the standalone class's default) is beyond any real stream, while
:mod:`models.signal_monitor` caps rows to keep a signal's serialised state small.

State slice (:func:`size` floats from ``base``): ``WIDTH``, ``TOTAL``, ``VARIANCE``, ``TICK``,
``ROWS`` (rows in use), ``DETECTED``, ``CAP_ROWS`` (``max_rows``), then per row ``[head, count,
totals[max_buckets + 1], variances[max_buckets + 1]]`` as ring buffers. :func:`pack` and
:func:`unpack` give the compact, canonical form (buckets in use only, oldest first).

>>> import numpy as np
>>> adwin = ADWIN(delta=0.002)
>>> adwin.detect(np.r_[np.zeros(500), np.ones(500)]).tolist()
[511]
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from models.drift._arrays import FloatArray, IntArray, as_values
from models.numba_config import kernel

__all__ = [
    "ADWIN",
    "HEADER",
    "MAX_ROWS",
    "init",
    "pack",
    "packed_size",
    "run",
    "size",
    "unpack",
]

WIDTH: Final = 0
TOTAL: Final = 1
VARIANCE: Final = 2
TICK: Final = 3
ROWS: Final = 4
DETECTED: Final = 5
CAP_ROWS: Final = 6
HEADER: Final = 7
MAX_ROWS: Final = 40
# Row layout: ring head, bucket count, then the totals and variances rings.
_HEAD: Final = 0
_COUNT: Final = 1
_DATA: Final = 2


def size(max_buckets: int, max_rows: int = MAX_ROWS) -> int:
    """Floats in the state slice of an ADWIN with ``max_buckets`` and room for ``max_rows`` rows."""
    return HEADER + max_rows * (2 * max_buckets + 4)


@kernel
def init(state: FloatArray, base: int, max_buckets: int, max_rows: int) -> None:
    end = base + HEADER + max_rows * (2 * max_buckets + 4)
    for i in range(base, end):
        state[i] = 0.0
    state[base + ROWS] = 1.0  # row 0 always exists
    state[base + CAP_ROWS] = max_rows


@kernel
def _load_meta(state: FloatArray, base: int, stride: int, heads: IntArray, counts: IntArray) -> None:
    # Ring heads and counts as integers for the batch: no float/int conversion per merge.
    for row in range(heads.shape[0]):
        row_at = base + HEADER + row * stride
        heads[row] = int(state[row_at + _HEAD])
        counts[row] = int(state[row_at + _COUNT])


@kernel
def _store_meta(state: FloatArray, base: int, stride: int, heads: IntArray, counts: IntArray) -> None:
    for row in range(heads.shape[0]):
        row_at = base + HEADER + row * stride
        state[row_at + _HEAD] = heads[row]
        state[row_at + _COUNT] = counts[row]


@kernel
def _delete_oldest_bucket(
    state: FloatArray,
    base: int,
    cap: int,
    heads: IntArray,
    counts: IntArray,
    rows: int,
    width: float,
    total: float,
    variance: float,
) -> tuple[int, float, float, float]:
    """Forget the oldest bucket (of the top row); returns the new ``(rows, width, total, variance)``."""
    stride = 2 * cap + 2
    last = rows - 1
    row_at = base + HEADER + last * stride
    n = float(1 << last)
    j = heads[last]
    u = state[row_at + _DATA + j]
    v = state[row_at + _DATA + cap + j]
    mu = u / n
    width = width - n
    total = total - u
    mu_window = total / width
    variance -= v + n * width * (mu - mu_window) * (mu - mu_window) / (n + width)
    heads[last] = j + 1 if j + 1 < cap else 0
    counts[last] -= 1
    if counts[last] == 0 and last > 0:
        rows = last
    return rows, width, total, variance


@kernel
def _compress(
    state: FloatArray,
    base: int,
    cap: int,
    max_rows: int,
    heads: IntArray,
    counts: IntArray,
    rows: int,
    width: float,
    total: float,
    variance: float,
) -> tuple[int, float, float, float]:
    """Merge full rows upwards (row 0 has just filled); returns ``(rows, width, total, variance)``."""
    stride = 2 * cap + 2
    row = 0
    while counts[row] == cap:
        if row + 1 >= max_rows:
            # Bounded memory: forget the oldest bucket rather than grow.
            return _delete_oldest_bucket(state, base, cap, heads, counts, rows, width, total, variance)
        row_at = base + HEADER + row * stride
        # Bucket means: dividing by 2**row is exact, so multiplying by its inverse gives the
        # same bits as river's division.
        inv = 1.0 / float(1 << row)
        j0 = heads[row]
        j1 = j0 + 1 if j0 + 1 < cap else 0
        t0 = state[row_at + _DATA + j0]
        t1 = state[row_at + _DATA + j1]
        mu1 = t0 * inv
        mu2 = t1 * inv
        merged_var = (
            state[row_at + _DATA + cap + j0]
            + state[row_at + _DATA + cap + j1]
            + float(1 << row) * 0.5 * (mu1 - mu2) * (mu1 - mu2)
        )
        if row + 1 >= rows:
            rows = row + 2
        next_at = row_at + stride
        k = heads[row + 1] + counts[row + 1]
        if k >= cap:
            k -= cap
        state[next_at + _DATA + k] = t0 + t1
        state[next_at + _DATA + cap + k] = merged_var
        counts[row + 1] += 1
        h = j0 + 2
        heads[row] = h if h < cap else h - cap
        counts[row] -= 2
        if counts[row + 1] < cap:
            break
        row += 1
    return rows, width, total, variance


@kernel
def _cut(
    width: float, variance: float, n0: float, n1: float, delta_mean: float, delta_prime: float, min_len: float
) -> bool:
    m_recip = 1.0 / (n0 - min_len + 1.0) + 1.0 / (n1 - min_len + 1.0)
    epsilon = math.sqrt(2.0 * m_recip * (variance / width) * delta_prime) + 2.0 / 3.0 * delta_prime * m_recip
    return abs(delta_mean) > epsilon


@kernel
def _prefixes(
    state: FloatArray,
    base: int,
    cap: int,
    heads: IntArray,
    counts: IntArray,
    rows: int,
    total: float,
    scratch: FloatArray,
) -> int:
    """Per cut, oldest bucket first: ``n0`` and the running ``u0``/``u1`` in river's operation order.

    ``scratch`` rows 0-2 get ``n0``, ``u0``, ``u1`` after each bucket (``n1`` is ``width - n0``,
    exact for integers). Returns the number of buckets.
    """
    stride = 2 * cap + 2
    nb = 0
    n0 = 0.0
    u0 = 0.0
    u1 = total
    n0s, u0s, u1s = scratch[0], scratch[1], scratch[2]
    for row in range(rows - 1, -1, -1):
        row_at = base + HEADER + row * stride
        size = float(1 << row)
        head = heads[row]
        count = counts[row]
        # Every slot of the ring, in order, with empty ones adding exactly zero: the same trip
        # count for every row, which the branch predictor follows (a row's varying bucket count
        # cost a mispredicted loop exit per row).
        for k in range(cap):
            j = head + k
            if j >= cap:
                j -= cap
            used = k < count
            t = state[row_at + _DATA + j] if used else 0.0
            n0 += size if used else 0.0
            u0 += t
            u1 -= t
            n0s[nb] = n0
            u0s[nb] = u0
            u1s[nb] = u1
            nb += 1 if used else 0
    return nb


@kernel
def _scan(
    state: FloatArray,
    base: int,
    cap: int,
    heads: IntArray,
    counts: IntArray,
    rows: int,
    width: float,
    total: float,
    variance: float,
    delta: float,
    min_len: float,
    scratch: FloatArray,
) -> tuple[bool, int, float, float, float]:
    """Test every cut, dropping the oldest bucket while one holds; ``(detected, rows, width, ...)``.

    Two passes: the running sums per cut (:func:`_prefixes`, a short dependency chain per bucket),
    then the cuts tested against a division-free screen in a loop with no loop-carried state,
    which LLVM vectorises; only cuts passing the screen get river's exact test, in order.
    """
    detected = False
    again = True
    while again:
        again = False
        nb = _prefixes(state, base, cap, heads, counts, rows, total, scratch)
        # No cut after the newest bucket (river stops there).
        cuts = nb - 1 if counts[0] > 0 else nb
        # The bound's log term depends on the width only: once per scan, not once per cut.
        delta_prime = math.log(2.0 * math.log(width) / delta)
        screen_c = (1.0 - 1e-9) * 2.0 * variance * delta_prime
        screen = min_len >= 1.0 and screen_c > 0.0
        first = 0
        if screen:
            # Division-free screen: m >= 1/n0 + 1/n1 when min_len >= 1, so a cut needs
            # (u0 n1 - u1 n0)^2 > 2 v d' n0 n1. Only cuts passing it (with a margin far
            # wider than rounding) get river's exact test, which alone decides. Branch-free
            # body with an exit at the first candidate: in control, no cut passes.
            n0s, u0s, u1s = scratch[0], scratch[1], scratch[2]
            first = cuts
            for c in range(cuts):
                n0 = n0s[c]
                n1 = width - n0
                a = u0s[c] * n1
                b = u1s[c] * n0
                gap = abs(a - b) + 1e-12 * (abs(a) + abs(b))
                if (gap * gap > screen_c * n0 * n1) & (n1 >= min_len) & (n0 >= min_len):
                    first = c
                    break
        for c in range(first, cuts):
            n0 = scratch[0, c]
            n1 = width - n0
            if n1 >= min_len and n0 >= min_len:
                u0 = scratch[1, c]
                u1 = scratch[2, c]
                if screen:
                    a = u0 * n1
                    b = u1 * n0
                    gap = abs(a - b) + 1e-12 * (abs(a) + abs(b))
                    if gap * gap <= screen_c * n0 * n1:
                        continue
                if _cut(width, variance, n0, n1, u0 / n0 - u1 / n1, delta_prime, min_len):
                    detected = True
                    again = True
                    if width > 0.0:
                        rows, width, total, variance = _delete_oldest_bucket(
                            state, base, cap, heads, counts, rows, width, total, variance
                        )
                        break
    return detected, rows, width, total, variance


_SEGMENT: Final = 256  # readings between structure updates at most (bounds the scratch buffers)


@kernel
def _readings_until_forgetting(counts: IntArray, cap: int, max_rows: int, limit: int) -> int:
    """Index (from the next reading) of the reading whose merge cascade fills the top row.

    Row ``r`` merges at its ``cap - counts[r]``-th push and then every second push, and each merge
    is one push into row ``r + 1``; so the top row first fills at reading
    ``sum_r 2**r * (cap - 1 - counts[r])``. Returns ``limit`` when that is ``limit`` or later.
    """
    at = 0
    step = 1
    for row in range(max_rows):
        at += step * (cap - 1 - counts[row])
        if at >= limit:
            return limit
        step *= 2
    return at


@kernel
def _push_block(
    state: FloatArray,
    base: int,
    cap: int,
    max_rows: int,
    heads: IntArray,
    counts: IntArray,
    rows: int,
    width: float,
    total: float,
    variance: float,
    values: FloatArray,
    cur_t: FloatArray,
    cur_v: FloatArray,
    nxt_t: FloatArray,
    nxt_v: FloatArray,
) -> tuple[int, float, float, float]:
    """Append ``values`` to row 0 and merge upwards, row by row; the final buckets equal those of
    appending and compressing one reading at a time, because a row's buckets depend only on the
    order of what is pushed into it. The caller ends a block at the reading that fills the top
    row, so the one forgetting (which changes the window's statistics) happens at its last reading.
    """
    stride = 2 * cap + 2
    k = values.shape[0]
    for j in range(k):
        nxt_t[j] = values[j]
        nxt_v[j] = 0.0
    for row in range(max_rows):
        if k == 0:
            break
        row_at = base + HEADER + row * stride
        c = counts[row]
        h = heads[row]
        rows = max(row + 1, rows)
        if row == max_rows - 1:
            # Top row: append one by one, forgetting its oldest bucket whenever it fills.
            for j in range(k):
                slot = h + counts[row]
                if slot >= cap:
                    slot -= cap
                state[row_at + _DATA + slot] = nxt_t[j]
                state[row_at + _DATA + cap + slot] = nxt_v[j]
                counts[row] += 1
                if counts[row] == cap:
                    rows, width, total, variance = _delete_oldest_bucket(
                        state, base, cap, heads, counts, rows, width, total, variance
                    )
                h = heads[row]
            break
        n_items = c + k
        if n_items < cap:
            for j in range(k):
                slot = h + c + j
                if slot >= cap:
                    slot -= cap
                state[row_at + _DATA + slot] = nxt_t[j]
                state[row_at + _DATA + cap + slot] = nxt_v[j]
            counts[row] = n_items
            break
        # The row's buckets, oldest first, then the pushes.
        for j in range(c):
            slot = h + j
            if slot >= cap:
                slot -= cap
            cur_t[j] = state[row_at + _DATA + slot]
            cur_v[j] = state[row_at + _DATA + cap + slot]
        for j in range(k):
            cur_t[c + j] = nxt_t[j]
            cur_v[c + j] = nxt_v[j]
        merges = 1 + (n_items - cap) // 2
        # Bucket means: dividing by 2**row is exact, so multiplying by its inverse gives the
        # same bits as river's division.
        size = float(1 << row)
        inv = 1.0 / size
        for j in range(merges):
            t0 = cur_t[2 * j]
            t1 = cur_t[2 * j + 1]
            mu1 = t0 * inv
            mu2 = t1 * inv
            nxt_t[j] = t0 + t1
            nxt_v[j] = cur_v[2 * j] + cur_v[2 * j + 1] + size * 0.5 * (mu1 - mu2) * (mu1 - mu2)
        left = n_items - 2 * merges
        for j in range(left):
            state[row_at + _DATA + j] = cur_t[2 * merges + j]
            state[row_at + _DATA + cap + j] = cur_v[2 * merges + j]
        heads[row] = 0
        counts[row] = left
        k = merges
    return rows, width, total, variance


@kernel
def run(
    state: FloatArray,
    base: int,
    values: FloatArray,
    delta: float,
    clock: int,
    max_buckets: int,
    min_len: float,
    grace: float,
    out: IntArray,
) -> int:
    """Fold ``values`` in order; writes the indices of detections to ``out`` and returns their number.

    In blocks that end at the next cut scan (every ``clock`` readings), at the reading whose merges
    would overflow the top row, or after :data:`_SEGMENT` readings: first the window's width,
    total and variance over the block's readings (river's per-reading formula, in registers), then
    the buckets in one pass per row (:func:`_push_block`). Merging one reading at a time cost about
    14 ns a reading in ring-buffer bookkeeping; in blocks the merges of a row are one short loop.
    """
    n = values.shape[0]
    if n == 0:
        return 0
    cap = max_buckets + 1
    stride = 2 * cap + 2
    max_rows = int(state[base + CAP_ROWS])
    if state[base + DETECTED] != 0.0:
        init(state, base, max_buckets, max_rows)
    # Two allocations per call (each ~50 ns; a stream batch may be 10 readings): integer ring
    # metadata, and the float scratch (cut-scan sums, then the block-merge buffers).
    meta = np.empty(2 * max_rows, dtype=np.int64)
    heads, counts = meta[:max_rows], meta[max_rows:]
    _load_meta(state, base, stride, heads, counts)
    m = cap + min(_SEGMENT, n)
    flat_size = 3 * max_rows * cap
    floats = np.empty(flat_size + 4 * m)
    flat = floats[:flat_size].reshape((3, max_rows * cap))
    scratch = floats[flat_size:]
    cur_t, cur_v, nxt_t, nxt_v = scratch[:m], scratch[m : 2 * m], scratch[2 * m : 3 * m], scratch[3 * m :]
    rows = int(state[base + ROWS])
    width = state[base + WIDTH]
    total = state[base + TOTAL]
    variance = state[base + VARIANCE]
    tick = int(state[base + TICK])
    # Readings until the next scan, instead of an integer modulo per reading.
    to_scan = clock - tick % clock
    found = 0
    pending_reset = False
    i = 0
    while i < n:
        seg = min(n - i, to_scan, _SEGMENT)
        seg = min(seg, _readings_until_forgetting(counts, cap, max_rows, seg) + 1)
        # Running sum of squared deviations, in river's operation order.
        for j in range(i, i + seg):
            x = values[j]
            width += 1.0
            increment = 0.0
            if width > 1.0:
                d = x - total / (width - 1.0)
                increment = (width - 1.0) * d * d / width
            variance += increment
            total += x
        rows, width, total, variance = _push_block(
            state,
            base,
            cap,
            max_rows,
            heads,
            counts,
            rows,
            width,
            total,
            variance,
            values[i : i + seg],
            cur_t,
            cur_v,
            nxt_t,
            nxt_v,
        )
        i += seg
        tick += seg
        to_scan -= seg
        if to_scan == 0:
            to_scan = clock
            if width > grace:
                hit, rows, width, total, variance = _scan(
                    state,
                    base,
                    cap,
                    heads,
                    counts,
                    rows,
                    width,
                    total,
                    variance,
                    delta,
                    min_len,
                    flat,
                )
                if hit:
                    out[found] = i - 1
                    found += 1
                    # river resets on the next update: at once if there is one in this batch.
                    if i < n:
                        heads[:] = 0
                        counts[:] = 0
                        rows = 1
                        width = total = variance = 0.0
                        tick = 0
                        to_scan = clock
                    else:
                        pending_reset = True
    _store_meta(state, base, stride, heads, counts)
    state[base + ROWS] = rows
    state[base + WIDTH] = width
    state[base + TOTAL] = total
    state[base + VARIANCE] = variance
    state[base + TICK] = tick
    # A detection at the last reading: the next batch starts afresh (river resets on update).
    state[base + DETECTED] = 1.0 if pending_reset else 0.0
    return found


@kernel
def packed_size(state: FloatArray, base: int, max_buckets: int) -> int:
    """Floats of :func:`pack`'s output: per row in use, its count and its buckets' totals and variances."""
    stride = 2 * max_buckets + 4
    n = 0
    for row in range(int(state[base + ROWS])):
        n += 1 + 2 * int(state[base + HEADER + row * stride + _COUNT])
    return n


@kernel
def pack(state: FloatArray, base: int, max_buckets: int, out: FloatArray) -> None:
    """The rows in use, canonically: per row ``count, totals (oldest first), variances``."""
    cap = max_buckets + 1
    stride = 2 * cap + 2
    k = 0
    for row in range(int(state[base + ROWS])):
        row_at = base + HEADER + row * stride
        head = int(state[row_at + _HEAD])
        count = int(state[row_at + _COUNT])
        out[k] = count
        for b in range(count):
            j = head + b
            if j >= cap:
                j -= cap
            out[k + 1 + b] = state[row_at + _DATA + j]
            out[k + 1 + count + b] = state[row_at + _DATA + cap + j]
        k += 1 + 2 * count


@kernel
def unpack(state: FloatArray, base: int, max_buckets: int, packed: FloatArray) -> bool:
    """Inverse of :func:`pack` into a slice whose header is already set; False if ``packed`` is corrupt."""
    cap = max_buckets + 1
    stride = 2 * cap + 2
    rows = int(state[base + ROWS])
    if rows < 1 or rows > int(state[base + CAP_ROWS]):
        return False
    k = 0
    for row in range(rows):
        if k >= packed.shape[0]:
            return False
        count = packed[k]
        if (
            count != math.floor(count)
            or not 0.0 <= count <= max_buckets
            or k + 1 + 2 * count > packed.shape[0]
        ):
            return False
        c = int(count)
        row_at = base + HEADER + row * stride
        state[row_at + _HEAD] = 0.0
        state[row_at + _COUNT] = count
        for b in range(c):
            state[row_at + _DATA + b] = packed[k + 1 + b]
            state[row_at + _DATA + cap + b] = packed[k + 1 + c + b]
        k += 1 + 2 * c
    return bool(k == packed.shape[0])


class ADWIN:
    """river-compatible ADWIN: same parameters, same defaults, same detections.

    ``max_rows`` bounds memory (see the module docstring); the default is beyond any real stream.
    """

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
        max_rows: int = MAX_ROWS,
    ) -> None:
        if not 0.0 < delta < 1.0 or clock < 1 or not 2 <= max_buckets <= 64:
            raise ValueError("0 < delta < 1, clock >= 1 and 2 <= max_buckets <= 64 are required")
        if not 2 <= max_rows <= 60:
            raise ValueError("max_rows must lie in [2, 60]")
        self.delta = float(delta)
        self.clock = int(clock)
        self.max_buckets = int(max_buckets)
        self.min_window_length = int(min_window_length)
        self.grace_period = int(grace_period)
        self.state = np.empty(size(self.max_buckets, max_rows), dtype=np.float64)
        init(self.state, 0, self.max_buckets, max_rows)

    @property
    def drift_detected(self) -> bool:
        return bool(self.state[DETECTED] != 0.0)

    @property
    def width(self) -> int:
        return int(self.state[WIDTH])

    @property
    def estimation(self) -> float:
        width = self.state[WIDTH]
        return 0.0 if width == 0.0 else float(self.state[TOTAL] / width)

    def update(self, x: float) -> bool:
        """One reading (call overhead dominates: prefer :meth:`detect` on arrays)."""
        if not math.isfinite(x):
            raise ValueError(f"x: must be finite, got {x!r}")
        return int(self.detect(np.array([float(x)])).shape[0]) > 0

    def detect(self, values: FloatArray) -> IntArray:
        """Feed a batch; the indices (into ``values``) of the readings that were detections."""
        values = as_values(values)
        out = np.empty(values.shape[0], dtype=np.int64)
        found = run(
            self.state,
            0,
            values,
            self.delta,
            self.clock,
            self.max_buckets,
            float(self.min_window_length),
            float(self.grace_period),
            out,
        )
        return out[:found]
