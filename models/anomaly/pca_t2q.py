"""PCA-based Hotelling T² + Q (squared prediction error) detector, scored by a numba kernel.

Fit (on feature rows of normal operation):

1. standardise each feature by its training mean and standard deviation; features that are
   constant in training are dropped (their standard deviation is zero, so any later change would be
   an infinite z-score: the dropped set is recorded and reported);
2. principal components explaining ``explained_variance`` of the variance (scikit-learn ``PCA``);
3. ``T² = sum_k t_k² / λ_k`` in the principal subspace and ``Q = |z - P'P z|²`` in the residual;
4. each statistic is divided by its mean over the training rows, and the score is their sum, so both
   count alike whatever their scales (a row like the average training row scores about 2).

The per-feature contributions decompose the score exactly:
``c_j = z_j (P'Λ⁻¹P z)_j / mean(T²) + r_j² / mean(Q)`` with ``sum_j c_j = score``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from sklearn.decomposition import PCA

from models.anomaly.detector import FloatArray, as_matrix
from models.numba_config import kernel

__all__ = ["KIND", "PcaT2Q", "fit_pca_t2q"]

KIND: Final = "pca_t2q"
_MIN_ROWS: Final = 3


@kernel
def _t2q_kernel(
    x: FloatArray,
    keep: np.ndarray,
    mean: FloatArray,
    scale: FloatArray,
    center: FloatArray,
    components: FloatArray,
    inv_eig: FloatArray,
    t2_norm: float,
    q_norm: float,
    out: FloatArray,
    contrib: FloatArray,
    want_contrib: bool,
) -> None:
    n = x.shape[0]
    k, f = components.shape
    z = np.empty(f)
    t = np.empty(k)
    for i in range(n):
        for j in range(f):
            z[j] = (x[i, keep[j]] - mean[j]) / scale[j] - center[j]
        t2 = 0.0
        for c in range(k):
            acc = 0.0
            for j in range(f):
                acc += components[c, j] * z[j]
            t[c] = acc
            t2 += acc * acc * inv_eig[c]
        q = 0.0
        for j in range(f):
            recon = 0.0
            for c in range(k):
                recon += components[c, j] * t[c]
            r = z[j] - recon
            q += r * r
            if want_contrib:
                # (P' Λ⁻¹ P z)_j = sum_c P[c, j] t_c / λ_c
                w = 0.0
                for c in range(k):
                    w += components[c, j] * t[c] * inv_eig[c]
                value = z[j] * w / t2_norm
                if q_norm > 0.0:
                    value += r * r / q_norm
                contrib[i, keep[j]] = value
        score = t2 / t2_norm
        if q_norm > 0.0:
            score += q / q_norm
        out[i] = score


@dataclass(frozen=True, slots=True)
class PcaT2Q:
    """A fitted T² + Q detector: plain arrays, scored by :func:`_t2q_kernel`."""

    n_features: int
    keep: np.ndarray  # int64 indices of the features used (non-constant in training)
    mean: FloatArray
    scale: FloatArray
    center: FloatArray  # PCA's own mean of the standardised rows (~0), kept for exactness
    components: FloatArray  # (k, len(keep))
    eigenvalues: FloatArray  # (k,) variances of the components (ddof=1)
    t2_norm: float
    q_norm: float  # 0 when the components span every kept feature (no residual space)
    kind: str = KIND

    def _run(self, features: FloatArray, want_contrib: bool) -> tuple[FloatArray, FloatArray]:
        x = as_matrix(features, self.n_features)
        out = np.empty(x.shape[0])
        contrib = np.zeros((x.shape[0] if want_contrib else 0, self.n_features))
        _t2q_kernel(
            x,
            self.keep,
            self.mean,
            self.scale,
            self.center,
            self.components,
            1.0 / self.eigenvalues,
            self.t2_norm,
            self.q_norm,
            out,
            contrib,
            want_contrib,
        )
        return out, contrib

    def score(self, features: FloatArray) -> FloatArray:
        return self._run(features, False)[0]

    def contributions(self, features: FloatArray) -> FloatArray:
        return self._run(features, True)[1]

    def to_artifact(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "n_features": self.n_features,
            "keep": self.keep,
            "mean": self.mean,
            "scale": self.scale,
            "center": self.center,
            "components": self.components,
            "eigenvalues": self.eigenvalues,
            "t2_norm": self.t2_norm,
            "q_norm": self.q_norm,
        }

    @classmethod
    def from_artifact(cls, data: dict[str, Any]) -> PcaT2Q:
        def arr(name: str, dtype: type) -> np.ndarray:
            return np.ascontiguousarray(np.asarray(data[name], dtype=dtype))

        detector = cls(
            n_features=int(data["n_features"]),
            keep=arr("keep", np.int64),
            mean=arr("mean", np.float64),
            scale=arr("scale", np.float64),
            center=arr("center", np.float64),
            components=arr("components", np.float64),
            eigenvalues=arr("eigenvalues", np.float64),
            t2_norm=float(data["t2_norm"]),
            q_norm=float(data["q_norm"]),
        )
        f = detector.keep.shape[0]
        k = detector.eigenvalues.shape[0]
        if (
            detector.components.shape != (k, f)
            or detector.mean.shape != (f,)
            or detector.scale.shape != (f,)
            or detector.center.shape != (f,)
            or (f and (detector.keep.min() < 0 or detector.keep.max() >= detector.n_features))
            or not detector.t2_norm > 0
        ):
            raise ValueError("pca_t2q artifact: inconsistent array shapes or norms")
        _check_fitted_values(detector)
        return detector


def _check_fitted_values(detector: PcaT2Q) -> None:
    """What training guarantees (finite arrays, a positive spread and variance for every kept
    feature and component, at least one feature): an artifact that breaks it would be served and
    score every row NaN (never an alert) or infinite (an alert for ever)."""
    for name in ("mean", "scale", "center", "components", "eigenvalues"):
        if not np.isfinite(getattr(detector, name)).all():
            raise ValueError(f"pca_t2q artifact: {name}: not finite")
    for name in ("scale", "eigenvalues"):
        if not (getattr(detector, name) > 0).all():
            raise ValueError(f"pca_t2q artifact: {name}: must be positive")
    if not math.isfinite(detector.t2_norm):
        raise ValueError("pca_t2q artifact: t2_norm: not finite")
    if not (math.isfinite(detector.q_norm) and detector.q_norm >= 0):
        raise ValueError("pca_t2q artifact: q_norm: must be finite and at least 0")
    if detector.keep.shape[0] == 0 or detector.eigenvalues.shape[0] == 0:
        raise ValueError("pca_t2q artifact: keep, eigenvalues: at least one feature and component")


def fit_pca_t2q(features: FloatArray, explained_variance: float = 0.85) -> PcaT2Q:
    """Fit on training feature rows (n, f); ``explained_variance`` in (0, 1) picks the components."""
    if not (isinstance(features, np.ndarray) and features.ndim == 2):
        raise ValueError("features: expected a 2-D numpy array of training rows")
    x = as_matrix(features, features.shape[1])
    if x.shape[0] < _MIN_ROWS:
        raise ValueError(f"features: need at least {_MIN_ROWS} training rows, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise ValueError("features: training rows must be finite")
    if not 0.0 < explained_variance < 1.0:
        raise ValueError(f"explained_variance: must lie in (0, 1), got {explained_variance}")
    mean_all = x.mean(axis=0)
    std_all = x.std(axis=0, ddof=1)
    # A feature is constant when its spread is negligible next to its level (float noise only).
    varying = std_all > 1e-12 * np.maximum(1.0, np.abs(mean_all))
    keep = np.flatnonzero(varying).astype(np.int64)
    if keep.size == 0:
        raise ValueError("features: every feature is constant in the training rows")
    mean, scale = mean_all[keep], std_all[keep]
    z = (x[:, keep] - mean) / scale
    pca = PCA(n_components=explained_variance, svd_solver="full").fit(z)
    components = np.ascontiguousarray(pca.components_, dtype=np.float64)
    eigenvalues = np.ascontiguousarray(pca.explained_variance_, dtype=np.float64)
    # A component with (numerically) zero variance would divide by zero; floor it at float noise.
    eigenvalues = np.maximum(eigenvalues, 1e-12 * max(1.0, float(eigenvalues.max())))
    center = np.ascontiguousarray(pca.mean_, dtype=np.float64)
    raw = PcaT2Q(
        n_features=x.shape[1],
        keep=keep,
        mean=np.ascontiguousarray(mean),
        scale=np.ascontiguousarray(scale),
        center=center,
        components=components,
        eigenvalues=eigenvalues,
        t2_norm=1.0,
        q_norm=1.0,
    )
    # Score the training rows with unit norms, once per statistic, to get each statistic's mean.
    t2_only = PcaT2Q(**{**_fields(raw), "q_norm": 0.0})
    t2_mean = float(np.mean(t2_only.score(x)))
    q_mean = float(np.mean(raw.score(x))) - t2_mean
    has_residual = components.shape[0] < keep.size and q_mean > 0.0
    return PcaT2Q(
        **{
            **_fields(raw),
            "t2_norm": t2_mean if t2_mean > 0 else 1.0,
            "q_norm": q_mean if has_residual else 0.0,
        }
    )


def _fields(detector: PcaT2Q) -> dict[str, Any]:
    return {name: getattr(detector, name) for name in PcaT2Q.__slots__ if name != "kind"}
