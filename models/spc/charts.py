"""Individuals and moving-range (I-MR) chart limits from a baseline period.

Sigma is estimated from the average moving range, ``MR-bar / d2`` with ``d2 = 1.128`` for ranges of
two consecutive readings (the textbook I-MR estimator): it measures short-term, within-process
variation, so a slow drift in the baseline does not widen the limits the way the overall standard
deviation would. The streaming monitor freezes the same quantities in its state once its baseline
is complete (:mod:`models.signal_monitor`); this function computes them offline, e.g. to recompute
limits on demand from a chosen period.

>>> import numpy as np
>>> lim = imr_limits(np.array([10.0, 12.0, 11.0, 13.0, 12.0]))
>>> (lim.center, round(lim.sigma, 4), lim.mr_bar, round(lim.ucl, 3), round(lim.mr_ucl, 3))
(11.6, 1.3298, 1.5, 15.589, 4.901)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from models.arrays import FloatArray, as_values

__all__ = ["D2", "D4", "ImrLimits", "imr_limits"]

D2: Final = 1.128  # E[range of 2 normal readings] / sigma
D4: Final = 3.267  # upper limit factor of the moving-range chart (n = 2)


@dataclass(frozen=True, slots=True)
class ImrLimits:
    center: float
    sigma: float  # MR-bar / d2
    mr_bar: float
    ucl: float
    lcl: float
    mr_ucl: float
    n: int


def imr_limits(values: FloatArray) -> ImrLimits:
    """Limits of an I-MR chart whose baseline is ``values`` (at least 2 readings)."""
    values = as_values(values)
    if values.shape[0] < 2:
        raise ValueError("values: an I-MR baseline needs at least 2 readings")
    center = float(values.mean())
    mr_bar = float(np.abs(np.diff(values)).mean())
    sigma = mr_bar / D2
    return ImrLimits(
        center, sigma, mr_bar, center + 3 * sigma, center - 3 * sigma, D4 * mr_bar, values.shape[0]
    )
