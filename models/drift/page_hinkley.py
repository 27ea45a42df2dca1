"""Page-Hinkley change detection with river's semantics (``river.drift.PageHinkley``), in numba.

The statistic follows river exactly, including its details, so that detections are identical on the
same series (a test checks this): the running mean is updated as ``m += (1/n) * (x - m)``; the
decrease statistic starts its maximum at -1; nothing is tested before ``min_instances`` readings; and
after a detection the detector starts afresh at the *next* reading.

State slice (:data:`SIZE` floats from ``base``): ``N``, ``MEAN``, ``SUM_INC``, ``SUM_DEC``,
``MIN_INC`` (+inf when empty), ``MAX_DEC``, ``DETECTED`` (1.0 when the last reading was a detection).

>>> import numpy as np
>>> ph = PageHinkley(min_instances=10, threshold=5.0)
>>> ph.detect(np.r_[np.zeros(50), np.full(50, 1.0)]).tolist()
[55]
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from models.arrays import FloatArray, IntArray, as_values
from models.numba_config import kernel

__all__ = ["MODES", "SIZE", "PageHinkley", "init", "load", "step", "store"]

N: Final = 0
MEAN: Final = 1
SUM_INC: Final = 2
SUM_DEC: Final = 3
MIN_INC: Final = 4
MAX_DEC: Final = 5
DETECTED: Final = 6
SIZE: Final = 7

MODES: Final = {"both": 0, "up": 1, "down": 2}


@kernel
def init(state: FloatArray, base: int) -> None:
    state[base + N] = 0.0
    state[base + MEAN] = 0.0
    state[base + SUM_INC] = 0.0
    state[base + SUM_DEC] = 0.0
    state[base + MIN_INC] = math.inf
    state[base + MAX_DEC] = -1.0
    state[base + DETECTED] = 0.0


@kernel
def step(
    n: float,
    mean: float,
    sum_inc: float,
    sum_dec: float,
    min_inc: float,
    max_dec: float,
    detected: float,
    x: float,
    min_instances: float,
    delta: float,
    threshold: float,
    alpha: float,
    mode: int,
) -> tuple[float, float, float, float, float, float, float]:
    """One reading over scalars (so callers keep the state in registers); returns the new state.

    The last element, ``detected``, is 1.0 when this reading is a detection.
    """
    if detected != 0.0:
        n, mean, sum_inc, sum_dec, min_inc, max_dec = 0.0, 0.0, 0.0, 0.0, math.inf, -1.0
    n += 1.0
    # river's Mean: mean += (w / n) * (x - mean) with w = 1; the same operation order keeps equality.
    mean += (1.0 / n) * (x - mean)
    dev = x - mean
    sum_inc = alpha * sum_inc + dev - delta
    sum_dec = alpha * sum_dec + dev + delta
    min_inc = min(min_inc, sum_inc)
    max_dec = max(max_dec, sum_dec)
    hit = False
    if n >= min_instances:
        up = sum_inc - min_inc > threshold
        down = max_dec - sum_dec > threshold
        hit = (up or down) if mode == 0 else (up if mode == 1 else down)
    return n, mean, sum_inc, sum_dec, min_inc, max_dec, (1.0 if hit else 0.0)


@kernel
def load(state: FloatArray, base: int) -> tuple[float, float, float, float, float, float, float]:
    return (
        state[base + N],
        state[base + MEAN],
        state[base + SUM_INC],
        state[base + SUM_DEC],
        state[base + MIN_INC],
        state[base + MAX_DEC],
        state[base + DETECTED],
    )


@kernel
def store(state: FloatArray, base: int, s: tuple[float, float, float, float, float, float, float]) -> None:
    for i in range(SIZE):
        state[base + i] = s[i]


@kernel
def _detect_kernel(
    state: FloatArray,
    values: FloatArray,
    min_instances: float,
    delta: float,
    threshold: float,
    alpha: float,
    mode: int,
    out: IntArray,
) -> int:
    found = 0
    n, mean, sum_inc, sum_dec, min_inc, max_dec, detected = load(state, 0)
    for i in range(values.shape[0]):
        n, mean, sum_inc, sum_dec, min_inc, max_dec, detected = step(
            n,
            mean,
            sum_inc,
            sum_dec,
            min_inc,
            max_dec,
            detected,
            values[i],
            min_instances,
            delta,
            threshold,
            alpha,
            mode,
        )
        if detected != 0.0:
            out[found] = i
            found += 1
    store(state, 0, (n, mean, sum_inc, sum_dec, min_inc, max_dec, detected))
    return found


class PageHinkley:
    """river-compatible Page-Hinkley: same parameters, same defaults, same detections."""

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {sorted(MODES)}, got {mode!r}")
        if min_instances < 1 or threshold <= 0 or not 0.0 < alpha <= 1.0:
            raise ValueError("min_instances >= 1, threshold > 0 and 0 < alpha <= 1 are required")
        self.min_instances = min_instances
        self.delta = float(delta)
        self.threshold = float(threshold)
        self.alpha = float(alpha)
        self.mode = mode
        self.state = np.empty(SIZE, dtype=np.float64)
        init(self.state, 0)

    @property
    def drift_detected(self) -> bool:
        return bool(self.state[DETECTED] != 0.0)

    def update(self, x: float) -> bool:
        """One reading (about 200 ns of call overhead: prefer :meth:`detect` on arrays)."""
        if not math.isfinite(x):
            raise ValueError(f"x: must be finite, got {x!r}")
        return bool(self.detect(np.array([float(x)])).shape[0])

    def detect(self, values: FloatArray) -> IntArray:
        """Feed a batch; the indices (into ``values``) of the readings that were detections."""
        values = as_values(values)
        out = np.empty(values.shape[0], dtype=np.int64)
        found = _detect_kernel(
            self.state,
            values,
            float(self.min_instances),
            self.delta,
            self.threshold,
            self.alpha,
            MODES[self.mode],
            out,
        )
        return out[:found]
