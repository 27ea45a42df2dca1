"""SKAB's published scores, re-implemented from its protocol description (no code copied).

Outlier detection, point-wise and pooled over all test rows of all files (no window, no point
adjustment): ``F1 = TP / (TP + (FN + FP) / 2)``, ``FAR = FP / (FP + TN)``, ``MAR = FN / (FN + TP)``.

Changepoint detection, NAB-style: a file's predicted changepoints are the rows where the predicted
outlier label changes (and the first test row if it is predicted anomalous). Each true changepoint
``c`` opens a detection window ``[c, c + 60 s]`` ("righter"); when a window reaches into the next
one, the next one starts where the previous ends ("cut right window"). Per window, the *first*
predicted changepoint inside it is a true positive, scored by the scaled sigmoid
``y(x) = (A_tp - A_fp) / 2 * (1 - tanh(x) / tanh(π/2)) + A_fp`` at the prediction's relative position
in the window (x from -π/2 at the window's start to π/2 at its end, on a 1000-point grid); further
predictions inside the window count for nothing; a window without one is a false negative
(``A_fn``); a prediction outside every window is a false positive (``A_fp``). Summed over files,
a profile's score is ``100 (S - S_null) / (S_perfect - S_null)`` with ``S_perfect = n_windows A_tp``
and ``S_null = n_windows A_fn``. Profiles (A_tp, A_fp, A_fn): Standard (1, -0.11, -1), LowFP
(1, -0.22, -1), LowFN (1, -0.11, -2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from models.arrays import BoolArray, IntArray

__all__ = [
    "NAB_PROFILES",
    "BinaryScores",
    "FileResult",
    "binary_scores",
    "changepoints_from_labels",
    "nab_scores",
]


NAB_PROFILES: Final[dict[str, tuple[float, float, float]]] = {
    "standard": (1.0, -0.11, -1.0),
    "lowfp": (1.0, -0.22, -1.0),
    "lowfn": (1.0, -0.11, -2.0),
}
NAB_WINDOW_MS: Final = 60_000
_GRID: Final = 1000


@dataclass(frozen=True, slots=True)
class FileResult:
    """One labelled file's test rows: times (epoch ms), true labels and predictions."""

    name: str
    ts_ms: IntArray
    anomaly: BoolArray
    changepoint: BoolArray
    predicted: BoolArray


@dataclass(frozen=True, slots=True)
class BinaryScores:
    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def f1(self) -> float:
        denominator = self.tp + (self.fn + self.fp) / 2
        return self.tp / denominator if denominator else 0.0

    @property
    def far(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    @property
    def mar(self) -> float:
        return self.fn / (self.fn + self.tp) if self.fn + self.tp else 0.0


def binary_scores(results: Sequence[FileResult]) -> BinaryScores:
    tp = fp = tn = fn = 0
    for result in results:
        truth, pred = result.anomaly, result.predicted
        tp += int(np.sum(truth & pred))
        fp += int(np.sum(~truth & pred))
        tn += int(np.sum(~truth & ~pred))
        fn += int(np.sum(truth & ~pred))
    return BinaryScores(tp, fp, tn, fn)


def changepoints_from_labels(predicted: BoolArray) -> BoolArray:
    """Rows where the predicted label changes; the first row counts when it is predicted anomalous."""
    out = np.zeros(predicted.shape[0], dtype=np.bool_)
    if predicted.shape[0]:
        out[0] = bool(predicted[0])
        out[1:] = predicted[1:] != predicted[:-1]
    return out


def _windows(ts_ms: IntArray, changepoint: BoolArray) -> list[list[int]]:
    windows = [[int(t), int(t) + NAB_WINDOW_MS] for t in ts_ms[changepoint]]
    for i in range(len(windows) - 1):
        windows[i + 1][0] = max(windows[i][1], windows[i + 1][0])
    return windows


def _sigmoid(position: float, a_tp: float, a_fp: float) -> float:
    index = min(int(position * _GRID), _GRID - 1)
    x = -math.pi / 2 + math.pi * index / (_GRID - 1)
    return (a_tp - a_fp) / 2 * -math.tanh(x) / math.tanh(math.pi / 2) + (a_tp - a_fp) / 2 + a_fp


def _file_counts(result: FileResult) -> tuple[list[float], int, int, int]:
    """(relative positions of true positives, false positives, false negatives, windows)."""
    predicted_times = result.ts_ms[changepoints_from_labels(result.predicted)]
    windows = _windows(result.ts_ms, result.changepoint)
    if not windows:
        return [], int(predicted_times.shape[0]), 0, 0
    positions: list[float] = []
    misses = 0
    false_positives = int(np.sum(predicted_times < windows[0][0]))
    for i, (lo, hi) in enumerate(windows):
        inside = predicted_times[(predicted_times >= lo) & (predicted_times <= hi)]
        if inside.shape[0] == 0:
            misses += 1
        else:
            positions.append((int(inside[0]) - lo) / (hi - lo) if hi > lo else 0.0)
        upper = windows[i + 1][0] if i + 1 < len(windows) else None
        after = predicted_times > hi
        if upper is not None:
            after &= predicted_times < upper
        false_positives += int(np.sum(after))
    return positions, false_positives, misses, len(windows)


def nab_scores(results: Sequence[FileResult]) -> dict[str, float]:
    """NAB score (0 = null detector, 100 = perfect) per profile, pooled over files as SKAB does."""
    counts = [_file_counts(result) for result in results]
    out: dict[str, float] = {}
    for profile, (a_tp, a_fp, a_fn) in NAB_PROFILES.items():
        score = perfect = null = 0.0
        for positions, false_positives, misses, n_windows in counts:
            score += a_fp * false_positives + a_fn * misses
            score += sum(_sigmoid(p, a_tp, a_fp) for p in positions)
            perfect += n_windows * a_tp
            null += n_windows * a_fn
        out[profile] = 100.0 * (score - null) / (perfect - null) if perfect != null else 0.0
    return out
