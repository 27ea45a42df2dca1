"""The interface every anomaly detector implements, so training, serving and ``evaluate`` treat them alike.

A detector is fitted on feature rows of normal operation and returns, per row, a score where
*higher means more anomalous* (the isolation forest negates scikit-learn's ``score_samples`` for
this). The alarm threshold is not the detector's business: :mod:`models.anomaly.calibration`
derives it from the training scores, so every detector gets the same false-alarm semantics.

Detectors persist as a plain dict of numpy arrays, numbers, strings and (for the isolation forest)
the fitted scikit-learn estimator: :meth:`Detector.to_artifact` and the kind's ``from_artifact``.
The registry stores that dict in skops format, whose loader accepts only listed types.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from models.arrays import FloatArray

__all__ = ["Detector", "FloatArray", "as_matrix"]


@runtime_checkable
class Detector(Protocol):
    @property
    def kind(self) -> str:
        """The detector's kind, as stored in artifacts (``pca_t2q``, ``isolation_forest``)."""
        ...

    @property
    def n_features(self) -> int:
        """Width of the feature rows it scores."""
        ...

    def score(self, features: FloatArray) -> FloatArray:
        """One score per row of ``features`` (n, n_features); higher is more anomalous."""
        ...

    def contributions(self, features: FloatArray) -> FloatArray:
        """Per row and feature, how much the feature pushed the score up (same shape as ``features``)."""
        ...

    def to_artifact(self) -> dict[str, Any]:
        """Everything needed to rebuild the detector, in types the registry trusts."""
        ...


def as_matrix(features: object, n_features: int, name: str = "features") -> FloatArray:
    """A C-contiguous float64 (n, n_features) matrix, or ValueError naming the problem."""
    if not isinstance(features, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(features).__name__}")
    if features.ndim != 2 or features.shape[1] != n_features:
        raise ValueError(f"{name}: expected shape (n, {n_features}), got {features.shape}")
    if features.dtype != np.float64:
        raise ValueError(f"{name}: expected float64, got {features.dtype}")
    return np.ascontiguousarray(features)
