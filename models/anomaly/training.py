"""Fitting a complete anomaly model from rows of normal operation: features, detector, threshold.

:func:`fit_model` is what ``linepulse train`` and ``linepulse evaluate skab`` both call, and its
result is what the stream scores with, so the three share every line of model code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from models.anomaly.calibration import DEFAULT_FALSE_ALARM_RATE, Calibration, calibrate
from models.anomaly.detector import Detector, FloatArray
from models.anomaly.features import FeatureSpec, as_rows, window_features
from models.anomaly.isolation_forest import fit_isolation_forest
from models.anomaly.pca_t2q import fit_pca_t2q
from models.anomaly.scoring import AnomalyModel

__all__ = ["EVALUATED_CONFIG", "DetectorKind", "FittedModel", "ModelConfig", "default_config", "fit_model"]

DetectorKind = Literal["pca_t2q", "isolation_forest"]


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Hyper-parameters of a model; stored in the model's metadata."""

    detector: DetectorKind = "pca_t2q"
    window: int = 10
    stats: tuple[str, ...] = ("mean", "std")
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE
    margin: float = 1.0
    consecutive: int = 3
    release: float = 1.0
    explained_variance: float = 0.85  # pca_t2q
    n_estimators: int = 100  # isolation_forest
    max_samples: int | float | str = "auto"  # isolation_forest
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__} | {"stats": list(self.stats)}


# The configuration evaluated on SKAB (docs/anomaly.md), one setting for every file, and so the
# default of `linepulse train` and `linepulse evaluate skab`.
EVALUATED_CONFIG = ModelConfig(
    detector="pca_t2q",
    window=20,
    stats=("mean", "std"),
    false_alarm_rate=0.0,
    margin=3.0,
    consecutive=3,
    release=1.0,
    explained_variance=0.95,
)

# The isolation forest's scores lie in (0, 1] (2 ** -(mean depth / c)): a margin of 3 over the largest
# training score is never reached. Its axis-aligned splits isolate a machine's start-ups by the window
# means (levels follow the state), so it judges the window's spread only, at the 99.9 % training
# quantile, 10 rows in a row (docs/anomaly.md, "Isolation forest").
_FOREST_CONFIG = replace(
    EVALUATED_CONFIG,
    detector="isolation_forest",
    stats=("std",),
    false_alarm_rate=0.001,
    margin=1.0,
    consecutive=10,
)


def default_config(detector: DetectorKind = "pca_t2q") -> ModelConfig:
    """The configuration ``linepulse train`` and ``linepulse evaluate skab`` start from."""
    return _FOREST_CONFIG if detector == "isolation_forest" else EVALUATED_CONFIG


@dataclass(frozen=True, slots=True)
class FittedModel:
    model: AnomalyModel
    calibration: Calibration
    training_rows: int
    metrics: dict[str, float] = field(default_factory=dict)


def _fit_detector(config: ModelConfig, features: FloatArray) -> Detector:
    if config.detector == "pca_t2q":
        return fit_pca_t2q(features, config.explained_variance)
    if config.detector == "isolation_forest":
        return fit_isolation_forest(
            features, n_estimators=config.n_estimators, max_samples=config.max_samples, seed=config.seed
        )
    raise ValueError(f"detector: unknown kind {config.detector!r}")


def fit_model(
    rows: FloatArray | Sequence[FloatArray],
    signals: tuple[str, ...],
    config: ModelConfig,
    *,
    name: str,
    version: str = "unregistered",
    hold_ms: tuple[int, ...] | None = None,
) -> FittedModel:
    """Fit on aligned training ``rows`` (n, len(signals)), oldest first, or on several such series
    (one per machine of a type): each series' windows are computed on its own rows, as the stream
    computes them per machine, so no window spans two machines. ``hold_ms``: the per-signal hold
    bounds the rows were aligned with, which serving aligns with too."""
    spec = FeatureSpec(signals=signals, window=config.window, stats=config.stats)
    series = [rows] if isinstance(rows, np.ndarray) else list(rows)
    data = [as_rows(part, len(signals), "rows") for part in series]
    if not data:
        raise ValueError("rows: no training series")
    features = np.concatenate([window_features(spec, part) for part in data])
    detector = _fit_detector(config, features)
    scores = detector.score(features)
    calibration = calibrate(scores, config.false_alarm_rate, config.margin)
    model = AnomalyModel(
        name=name,
        version=version,
        features=spec,
        detector=detector,
        threshold=calibration.threshold,
        consecutive=config.consecutive,
        release=config.release,
        hold_ms=hold_ms,
    )
    metrics = {
        "training_score_mean": float(np.mean(scores)),
        "training_score_p50": float(np.quantile(scores, 0.5)),
        "training_score_max": float(np.max(scores)),
        "training_alarm_rate": calibration.training_alarm_rate,
    }
    return FittedModel(model, calibration, int(features.shape[0]), metrics)
