"""The alarm threshold, calibrated from the detector's scores on training data.

Semantics: with ``false_alarm_rate = r``, the threshold is the ``(1 - r)`` empirical quantile of the
training scores times ``margin``. On data like the training data, about ``r`` of the rows score
above it (before the consecutive-rows rule of :mod:`models.anomaly.scoring`, which lowers the
alert rate further). ``margin > 1`` buys headroom for the small shifts that separate a training
period from the next days (temperature, wear) at the price of sensitivity.

:data:`DEFAULT_FALSE_ALARM_RATE` (0.5 % of rows) is only the bare default of a ``ModelConfig``; what
``linepulse train`` uses is :func:`models.anomaly.training.default_config`: the largest training
score (``r = 0``) times 3 for T²+Q, the 99.9 % quantile times 1 for the isolation forest (its scores
never exceed 1); ``evaluate skab`` starts from ``service.evaluate_skab.skab_config``. A quantile of
a few hundred training rows is noisy at small ``r``; the quantile is therefore never taken beyond the
largest training score (``numpy.quantile``'s linear interpolation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["DEFAULT_FALSE_ALARM_RATE", "Calibration", "calibrate"]

DEFAULT_FALSE_ALARM_RATE: Final = 0.005


@dataclass(frozen=True, slots=True)
class Calibration:
    threshold: float
    false_alarm_rate: float  # the target
    margin: float
    training_alarm_rate: float  # share of training rows above the threshold (a check of the target)


def calibrate(
    scores: npt.NDArray[np.float64], false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE, margin: float = 1.0
) -> Calibration:
    """Threshold at the ``1 - false_alarm_rate`` quantile of training ``scores``, times ``margin``."""
    if not 0.0 <= false_alarm_rate < 1.0:
        raise ValueError(f"false_alarm_rate: must lie in [0, 1), got {false_alarm_rate}")
    if not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin: must be a positive finite number, got {margin}")
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
        raise ValueError("scores: expected a non-empty 1-D array of finite training scores")
    quantile = float(np.quantile(values, 1.0 - false_alarm_rate))
    # Scores are non-negative for both detectors' conventions up to the isolation forest's sign; a
    # margin scales the distance from zero, so a negative quantile moves towards zero, not away.
    threshold = quantile * margin if quantile >= 0 else quantile / margin
    if not math.isfinite(threshold):
        raise ValueError(f"margin: {margin:g} x training quantile {quantile:.4g} is not a finite threshold")
    rate = float(np.mean(values > threshold))
    return Calibration(threshold, false_alarm_rate, margin, rate)
