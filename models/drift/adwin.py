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

Speed: :func:`run` keeps the window's width, total and variance in registers across a batch and
works on the buckets in plain per-row arrays for the call (the state keeps each row as a ring
buffer, stored back with its head at 0). Readings are appended and merged in blocks that end at
each cut scan; row 0's merges read the block's readings directly. A cut scan gathers the buckets
in window order and runs one flat loop of running sums and a division-free screen, first with a
lower bound of the bound's ``d'`` (one logarithm per power of two of the width); only cuts that
pass it get river's exact test. Small helpers are inlined (:func:`models.numba_config.inline_kernel`),
except the rare rest of a scan after that first screen (:func:`_scan_rest`), which in control
ends every scan: inlined, the rest's code took registers the merges need.

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

from models.arrays import FloatArray, IntArray, as_values
from models.numba_config import inline_kernel, kernel

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
def _row_offsets(cap: int, max_rows: int, offsets: IntArray) -> int:
    """Start of each row in the working buffers; returns their length.

    Row ``r`` holds at most ``cap - 1`` buckets between segments and receives at most
    ``(_SEGMENT >> r) + 1`` buckets within one (each row passes on at most half of what it gets,
    rounded up), so ``cap + (_SEGMENT >> r) + 2`` slots suffice.
    """
    at = 0
    for row in range(max_rows):
        offsets[row] = at
        at += cap + (_SEGMENT >> row) + 2
    return at


@kernel
def _load(
    state: FloatArray,
    base: int,
    cap: int,
    max_rows: int,
    offsets: IntArray,
    counts: IntArray,
    bt: FloatArray,
    bv: FloatArray,
) -> None:
    """The state's ring buffers into the working buffers: each row's buckets oldest first from its offset."""
    stride = 2 * cap + 2
    for row in range(max_rows):
        row_at = base + HEADER + row * stride
        head = int(state[row_at + _HEAD])
        count = int(state[row_at + _COUNT])
        counts[row] = count
        at = offsets[row]
        for b in range(count):
            j = head + b
            if j >= cap:
                j -= cap
            bt[at + b] = state[row_at + _DATA + j]
            bv[at + b] = state[row_at + _DATA + cap + j]


@kernel
def _store(
    state: FloatArray,
    base: int,
    cap: int,
    max_rows: int,
    offsets: IntArray,
    counts: IntArray,
    bt: FloatArray,
    bv: FloatArray,
) -> None:
    """The working buffers back into the state's rings (head 0: the canonical layout)."""
    stride = 2 * cap + 2
    for row in range(max_rows):
        row_at = base + HEADER + row * stride
        count = counts[row]
        state[row_at + _HEAD] = 0.0
        state[row_at + _COUNT] = count
        at = offsets[row]
        for b in range(count):
            state[row_at + _DATA + b] = bt[at + b]
            state[row_at + _DATA + cap + b] = bv[at + b]


@inline_kernel
def _delete_oldest_bucket(
    offsets: IntArray,
    counts: IntArray,
    bt: FloatArray,
    bv: FloatArray,
    rows: int,
    width: float,
    total: float,
    variance: float,
) -> tuple[int, float, float, float]:
    """Forget the oldest bucket (of the top row); returns the new ``(rows, width, total, variance)``."""
    last = rows - 1
    at = offsets[last]
    n = float(1 << last)
    u = bt[at]
    v = bv[at]
    mu = u / n
    width = width - n
    total = total - u
    mu_window = total / width
    variance -= v + n * width * (mu - mu_window) * (mu - mu_window) / (n + width)
    count = counts[last] - 1
    for b in range(count):
        bt[at + b] = bt[at + b + 1]
        bv[at + b] = bv[at + b + 1]
    counts[last] = count
    if count == 0 and last > 0:
        rows = last
    return rows, width, total, variance


@inline_kernel
def _cut(
    width: float, variance: float, n0: float, n1: float, delta_mean: float, delta_prime: float, min_len: float
) -> bool:
    m_recip = 1.0 / (n0 - min_len + 1.0) + 1.0 / (n1 - min_len + 1.0)
    epsilon = math.sqrt(2.0 * m_recip * (variance / width) * delta_prime) + 2.0 / 3.0 * delta_prime * m_recip
    return abs(delta_mean) > epsilon


@inline_kernel
def _gather(
    cap: int, offsets: IntArray, counts: IntArray, bt: FloatArray, rows: int, gt: FloatArray, gs: FloatArray
) -> int:
    """The buckets' totals and sizes in window order, oldest first, into ``gt``/``gs``; their number.

    A fixed trip count per row with a conditional advance (slots past a row's count are copied
    and then overwritten or left beyond the end): a row's varying count as the loop bound cost a
    mispredicted loop exit per row, which made the scan's sums cost ~5 ns a reading at clock 32.
    """
    nb = 0
    for row in range(rows - 1, -1, -1):
        at = offsets[row]
        size = float(1 << row)
        count = counts[row]
        for b in range(cap):
            gt[nb] = bt[at + b]
            gs[nb] = size
            nb += 1 if b < count else 0
    return nb


@inline_kernel
def _candidates(
    gt: FloatArray, gs: FloatArray, nb: int, width: float, total: float, screen_c: float, min_len: float
) -> int:
    """Cuts passing the screen (see :func:`_scan_rest`), with the running sums in river's order.

    One flat loop over the window-ordered buckets: the running sums are short dependency chains,
    and the screen's arithmetic per cut is independent of them, so it fills the cycles they wait.
    """
    candidates = 0
    n0 = 0.0
    u0 = 0.0
    u1 = total
    for c in range(nb):
        t = gt[c]
        n0 += gs[c]
        u0 += t
        u1 -= t
        candidates += _passes_screen(n0, u0, u1, width, screen_c, min_len)
    return candidates


@inline_kernel
def _passes_screen(n0: float, u0: float, u1: float, width: float, screen_c: float, min_len: float) -> int:
    """1 if the cut after ``n0`` readings (sums ``u0`` before, ``u1`` after) passes the screen."""
    n1 = width - n0
    x = u0 * n1
    y = u1 * n0
    gap = abs(x - y) + 1e-12 * (abs(x) + abs(y))
    return int((gap * gap > screen_c * n0 * n1) & (n1 >= min_len) & (n0 >= min_len))


@inline_kernel
def _screen_rows(
    offsets: IntArray,
    counts: IntArray,
    bt: FloatArray,
    rows: int,
    width: float,
    total: float,
    screen_c: float,
    min_len: float,
) -> int:
    """:func:`_candidates` straight over the rows, oldest first, without gathering the buckets.

    The same running sums in the same order and the same screen, so the same count. For the first
    screen of a scan, which in control ends it: the gather cost more (~40 ns a scan) than the
    mispredicted exits of the rows' loops that it avoids.
    """
    candidates = 0
    n0 = 0.0
    u0 = 0.0
    u1 = total
    for row in range(rows - 1, -1, -1):
        at = offsets[row]
        size = float(1 << row)
        for b in range(counts[row]):
            t = bt[at + b]
            n0 += size
            u0 += t
            u1 -= t
            candidates += _passes_screen(n0, u0, u1, width, screen_c, min_len)
    return candidates


@kernel
def _scan_rest(
    cap: int,
    offsets: IntArray,
    counts: IntArray,
    bt: FloatArray,
    bv: FloatArray,
    rows: int,
    width: float,
    total: float,
    variance: float,
    delta: float,
    min_len: float,
    gt: FloatArray,
    gs: FloatArray,
) -> tuple[bool, int, float, float, float]:
    """Test every cut, dropping the oldest bucket while one holds; ``(detected, rows, width, ...)``.

    The rest of a scan whose first screen (:func:`_screen_rows` with a lower bound of ``d'``, in
    :func:`run`) passed some cut: rare in control, so this is a kernel of its own; inlined into
    :func:`run`'s block loop its code took registers the merges need, and a scan cost ~5 ns a
    reading instead of ~1.5-2 (in-process A/B, clock 32).

    Per cut, oldest bucket first, ``n0`` and the running ``u0``/``u1`` in river's operation order.
    Division-free screen: ``m >= 1/n0 + 1/n1`` when ``min_len >= 1``, so a cut needs
    ``(u0 n1 - u1 n0)^2 > 2 v d' n0 n1``. Only if some cut passes it (with a margin far wider
    than rounding) do the cuts get river's exact test, in order, which alone decides. The cut
    after the newest bucket has ``n1 = 0`` and never passes.
    """
    detected = False
    again = True
    while again:
        again = False
        nb = _gather(cap, offsets, counts, bt, rows, gt, gs)
        # The bound's log term depends on the width only: once per scan, not once per cut.
        delta_prime = math.log(2.0 * math.log(width) / delta)
        screen_c = (1.0 - 1e-9) * 2.0 * variance * delta_prime
        screen = min_len >= 1.0 and screen_c > 0.0
        if screen and _candidates(gt, gs, nb, width, total, screen_c, min_len) == 0:
            break
        # No cut after the newest bucket (river stops there).
        cuts = nb - 1 if counts[0] > 0 else nb
        n0 = 0.0
        u0 = 0.0
        u1 = total
        for c in range(cuts):
            t = gt[c]
            n0 += gs[c]
            u0 += t
            u1 -= t
            n1 = width - n0
            if n1 >= min_len and n0 >= min_len:
                if screen:
                    x = u0 * n1
                    y = u1 * n0
                    gap = abs(x - y) + 1e-12 * (abs(x) + abs(y))
                    if gap * gap <= screen_c * n0 * n1:
                        continue
                if _cut(width, variance, n0, n1, u0 / n0 - u1 / n1, delta_prime, min_len):
                    detected = True
                    again = True
                    if width > 0.0:
                        rows, width, total, variance = _delete_oldest_bucket(
                            offsets, counts, bt, bv, rows, width, total, variance
                        )
                        break
    return detected, rows, width, total, variance


@inline_kernel
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


@inline_kernel
def _window_statistics(
    values: FloatArray, lo: int, hi: int, width: float, total: float, variance: float
) -> tuple[float, float, float]:
    """Width, total and running sum of squared deviations after ``values[lo:hi]``, in river's order."""
    for j in range(lo, hi):
        x = values[j]
        width += 1.0
        increment = 0.0
        if width > 1.0:
            d = x - total / (width - 1.0)
            increment = (width - 1.0) * d * d / width
        variance += increment
        total += x
    return width, total, variance


@inline_kernel
def _push_block(
    cap: int,
    max_rows: int,
    offsets: IntArray,
    counts: IntArray,
    bt: FloatArray,
    bv: FloatArray,
    rows: int,
    width: float,
    total: float,
    variance: float,
    values: FloatArray,
) -> tuple[int, float, float, float]:
    """Append ``values`` to row 0 and merge upwards, row by row; the final buckets equal those of
    appending and compressing one reading at a time, because a row's buckets depend only on the
    order of what is pushed into it. The forgetting when the top row fills (which changes the
    window's statistics) is normally done by the caller at its reading, before this block's merges
    (in :func:`run`); here only when the top row was empty before the
    block, and then the caller ends the block at that reading.

    Each row is a plain array in the working buffers: a row's merges read its oldest pairs and
    write straight after the next row's buckets, and the row's remaining one or two buckets move
    to its front, so every bucket is written once and read once.
    """
    # Row 0 (half of all merges) straight from ``values``: its buckets are single readings of
    # variance 0, so a merge's variance is ``(0 + 0) + 0.5 * d * d`` (``size = 1``), the same
    # bits as the general formula; the pairs of readings merge in a loop that reads ``values``
    # only, which LLVM vectorises. Row 0 holds c buckets followed by the readings.
    k = values.shape[0]
    c = counts[0]
    n_items = c + k
    if n_items < cap:
        for j in range(k):
            bt[c + j] = values[j]
            bv[c + j] = 0.0
        counts[0] = n_items
        return rows, width, total, variance
    merges = 1 + (n_items - cap) // 2
    nxt = offsets[1] + counts[1]
    j = 0
    while j < merges and 2 * j + 1 < c:  # pairs of earlier buckets
        t0 = bt[2 * j]
        t1 = bt[2 * j + 1]
        bt[nxt + j] = t0 + t1
        bv[nxt + j] = bv[2 * j] + bv[2 * j + 1] + 0.5 * (t0 - t1) * (t0 - t1)
        j += 1
    if j < merges and 2 * j < c:  # the last earlier bucket with the first reading
        t0 = bt[2 * j]
        t1 = values[0]
        bt[nxt + j] = t0 + t1
        bv[nxt + j] = bv[2 * j] + 0.0 + 0.5 * (t0 - t1) * (t0 - t1)
        j += 1
    first = 2 * j - c  # the readings' index of the next pair
    for q in range(merges - j):
        t0 = values[first + 2 * q]
        t1 = values[first + 2 * q + 1]
        bt[nxt + j + q] = t0 + t1
        bv[nxt + j + q] = 0.0 + 0.0 + 0.5 * (t0 - t1) * (t0 - t1)
    left = n_items - 2 * merges
    for q in range(left):
        at = 2 * merges + q
        bt[q] = bt[at] if at < c else values[at - c]
        bv[q] = bv[at] if at < c else 0.0
    counts[0] = left
    counts[1] += merges
    rows = max(rows, 2)
    for row in range(1, max_rows):
        n_items = counts[row]
        if n_items < cap:
            break
        at = offsets[row]
        if row == max_rows - 1:
            # Top row: forget its oldest bucket when it fills (at most once per block).
            rows, width, total, variance = _delete_oldest_bucket(
                offsets, counts, bt, bv, rows, width, total, variance
            )
            break
        merges = 1 + (n_items - cap) // 2
        nxt = offsets[row + 1] + counts[row + 1]
        # Bucket means: dividing by 2**row is exact, so multiplying by its inverse gives the
        # same bits as river's division.
        size = float(1 << row)
        inv = 1.0 / size
        half = size * 0.5
        for j in range(merges):
            t0 = bt[at + 2 * j]
            t1 = bt[at + 2 * j + 1]
            mu1 = t0 * inv
            mu2 = t1 * inv
            bt[nxt + j] = t0 + t1
            bv[nxt + j] = bv[at + 2 * j] + bv[at + 2 * j + 1] + half * (mu1 - mu2) * (mu1 - mu2)
        left = n_items - 2 * merges
        for j in range(left):
            bt[at + j] = bt[at + 2 * merges + j]
            bv[at + j] = bv[at + 2 * merges + j]
        counts[row] = left
        counts[row + 1] += merges
        rows = max(rows, row + 2)
    return rows, width, total, variance


_SEGMENT: Final = 256  # readings between structure updates at most (bounds the working buffers)


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

    In blocks that end at the next cut scan (every ``clock`` readings), before the second reading
    whose merges would overflow the top row, or after :data:`_SEGMENT` readings: first the window's
    width, total and variance over the block's readings (river's per-reading formula, in
    registers; the top row's forgetting in between, at its reading), then the buckets in one pass
    per row (:func:`_push_block`). The buckets live in plain per-row
    working arrays for the call (:func:`_load`/:func:`_store` convert from and to the state's
    rings): ring indexing and copies through scratch buffers cost more than the merges.
    """
    n = values.shape[0]
    if n == 0:
        return 0
    cap = max_buckets + 1
    max_rows = int(state[base + CAP_ROWS])
    if state[base + DETECTED] != 0.0:
        init(state, base, max_buckets, max_rows)
    # Two allocations per call (each ~50 ns; a stream batch may be 10 readings): integer row
    # metadata, and the floats (bucket totals and variances, then the cut scan's arrays).
    meta = np.empty(2 * max_rows, dtype=np.int64)
    offsets, counts = meta[:max_rows], meta[max_rows:]
    length = _row_offsets(cap, max_rows, offsets)
    cuts = max_rows * cap
    floats = np.empty(2 * length + 2 * cuts)
    bt, bv = floats[:length], floats[length : 2 * length]
    at = 2 * length
    gt, gs = floats[at : at + cuts], floats[at + cuts :]
    _load(state, base, cap, max_rows, offsets, counts, bt, bv)
    rows = int(state[base + ROWS])
    width = state[base + WIDTH]
    total = state[base + TOTAL]
    variance = state[base + VARIANCE]
    tick = int(state[base + TICK])
    # Readings until the next scan, instead of an integer modulo per reading.
    to_scan = clock - tick % clock
    found = 0
    pending_reset = False
    low_k = -1
    low = -1.0
    i = 0
    while i < n:
        seg = min(n - i, to_scan, _SEGMENT)
        forget = _readings_until_forgetting(counts, cap, max_rows, seg)
        # The top row's oldest bucket is forgotten after the window statistics of reading ``forget``
        # (it is the bucket that row already holds, so it can go before the block's merges). The
        # block goes on past it, up to before the next forgetting, which comes at least
        # 2**(max_rows - 1) readings later (each row passes on at most every second bucket it
        # gets): ending a block there instead cost an extra block every ~64 readings in the monitor.
        early = forget < seg and counts[max_rows - 1] > 0
        if early:
            seg = min(seg, forget + (1 << (max_rows - 1)))
            mid = i + forget + 1
        else:
            seg = min(seg, forget + 1)
            mid = i + seg
        width, total, variance = _window_statistics(values, i, mid, width, total, variance)
        if early:
            rows, width, total, variance = _delete_oldest_bucket(
                offsets, counts, bt, bv, rows, width, total, variance
            )
            width, total, variance = _window_statistics(values, mid, i + seg, width, total, variance)
        rows, width, total, variance = _push_block(
            cap, max_rows, offsets, counts, bt, bv, rows, width, total, variance, values[i : i + seg]
        )
        i += seg
        tick += seg
        to_scan -= seg
        if to_scan == 0:
            to_scan = clock
            if width > grace:
                # A lower bound of the bound's d' = ln(2 ln(W) / delta) from W >= 2**k: one
                # logarithm per power of two of the width instead of two per scan.
                k = math.frexp(width)[1] - 1
                if k != low_k:
                    low_k = k
                    arg = 2.0 * k * math.log(2.0) / delta
                    low = math.log(arg) if arg > 0.0 else -1.0
                # The first screen here, the rest of the scan out of line: in control the screen
                # ends every scan, and the scan's code inlined here cost registers the merges need.
                low_c = (1.0 - 1e-9) * 2.0 * variance * low
                hit = False
                if (
                    min_len < 1.0
                    or low_c <= 0.0
                    or _screen_rows(offsets, counts, bt, rows, width, total, low_c, min_len) > 0
                ):
                    hit, rows, width, total, variance = _scan_rest(
                        cap, offsets, counts, bt, bv, rows, width, total, variance, delta, min_len, gt, gs
                    )
                if hit:
                    out[found] = i - 1
                    found += 1
                    # river resets on the next update: at once if there is one in this batch.
                    if i < n:
                        counts[:] = 0
                        rows = 1
                        width = total = variance = 0.0
                        tick = 0
                        to_scan = clock
                    else:
                        pending_reset = True
    _store(state, base, cap, max_rows, offsets, counts, bt, bv)
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
