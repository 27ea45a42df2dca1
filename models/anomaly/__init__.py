"""Multivariate anomaly models of one machine: windowed features, detectors, calibration, scoring.

- :mod:`~models.anomaly.features`: per-signal window statistics as one feature vector per row, by
  one numba kernel that training, ``evaluate`` and the stream all call (no train/serve skew).
- :mod:`~models.anomaly.detector`: the interface every detector implements.
- :mod:`~models.anomaly.pca_t2q` and :mod:`~models.anomaly.isolation_forest`: the detectors; the
  isolation forest is fitted by scikit-learn and scored by a numba walk over its flattened trees.
- :mod:`~models.anomaly.calibration`: the alarm threshold from training scores and a false-alarm target.
- :mod:`~models.anomaly.scoring`: a fitted model applied to a machine's batches of readings.
"""

from __future__ import annotations

__all__: list[str] = []
