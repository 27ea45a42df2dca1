"""Honest SKAB figures: settings chosen on one half of the files, scores reported on the other half.

``linepulse evaluate skab PATH --cross-validate`` runs a two-fold cross-validation over files:

1. **Split** (:func:`split_files`, fixed before any result was seen): within each directory
   (``valve1``, ``valve2``, ``other``), files in natural order (``2.csv`` before ``10.csv``) alternate
   between part A (positions 0, 2, 4, ...) and part B (1, 3, 5, ...). Each part gets every kind of
   anomaly the benchmark has, and no file is in both.
2. **Tuning** (:func:`tune`) on one part: every configuration of :data:`GRID` is scored on that
   part's files with SKAB's protocol; the chosen one has the highest pooled F1 among those whose
   FAR is below :data:`TUNING_FAR_LIMIT` (10 %), ties going to the lower FAR; if none is below,
   the lowest FAR wins. The limit sits below the goal's 13.55 % (the best published FAR at F1
   0.78) on purpose: a FAR chosen on 17 files is optimistic for the other 17.
3. **Held-out score**: the chosen configuration is evaluated on the other part's files, which
   played no part in choosing it. Both folds (tune on A, test on B; tune on B, test on A) are run,
   and the two held-out halves are pooled into one score over all files, each file scored by a
   configuration chosen without it: the figure comparable with the published rows.

Evaluating a configuration here gives the same predictions as :func:`service.evaluate_skab.evaluate_file`
(a test checks it); it only reuses one fitted detector for every threshold, run length and
hysteresis, which do not change the fit.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Any, Final

import numpy as np

from models.anomaly.calibration import calibrate
from models.anomaly.features import window_features
from models.anomaly.scoring import flag_runs
from models.anomaly.training import EVALUATED_CONFIG, ModelConfig, fit_model
from service.evaluate_skab import TRAIN_ROWS, SkabFile, evaluate_file, summarise
from service.skab_metrics import BinaryScores, FileResult

__all__ = [
    "GOAL_FAR",
    "GRID",
    "TUNING_FAR_LIMIT",
    "WIDE_GRID",
    "CrossValidation",
    "Fold",
    "Grid",
    "Tuned",
    "cross_validate",
    "format_cross_validation",
    "split_files",
    "tune",
]

GOAL_FAR: Final = 0.1355  # Conv-AE's FAR, the best published row at F1 0.78: the goal
# The FAR a configuration must keep on the tuning files. The first run, with the goal itself as the
# limit and WIDE_GRID, chose configurations at 13.3 % on their tuning files that made 11.4 % and
# 21.0 % on the held-out files: selection sits on the limit and the other half lands either side.
TUNING_FAR_LIMIT: Final = 0.10


@dataclass(frozen=True, slots=True)
class Grid:
    """The settings tried; fitted once per (window, stats, explained variance), the rest reuses the fit.

    The default is the small grid :data:`GRID`: 36 configurations around the T²+Q detector's
    usual settings. Fewer candidates give the selection less room to fit the tuning files' noise
    (with 5040 candidates, :data:`WIDE_GRID`, the two folds chose windows of 10 and 30 and
    different statistics, a sign that the choice followed noise).
    """

    windows: tuple[int, ...] = (10, 20, 30)
    stats: tuple[tuple[str, ...], ...] = (("mean", "std"),)
    explained_variance: tuple[float, ...] = (0.95,)
    false_alarm_rate: tuple[float, ...] = (0.0,)
    margin: tuple[float, ...] = (2.0, 2.5, 3.0, 4.0)
    consecutive: tuple[int, ...] = (1, 3, 5)
    release: tuple[float, ...] = (1.0,)

    @property
    def size(self) -> int:
        return (
            len(self.windows)
            * len(self.stats)
            * len(self.explained_variance)
            * len(self.false_alarm_rate)
            * len(self.margin)
            * len(self.consecutive)
            * len(self.release)
        )


GRID: Final = Grid()
WIDE_GRID: Final = Grid(
    windows=(5, 10, 15, 20, 30),
    stats=(("mean", "std"), ("mean", "std", "slope"), ("mean", "std", "min", "max")),
    explained_variance=(0.85, 0.95, 0.99),
    false_alarm_rate=(0.0, 0.01),
    margin=(1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0),
    consecutive=(1, 3, 5, 10),
    release=(1.0, 0.7),
)


@dataclass(frozen=True, slots=True)
class Tuned:
    config: ModelConfig
    scores: BinaryScores  # pooled over the tuning files (in-sample)
    tried: int
    feasible: int  # configurations with FAR below the tuning limit on the tuning files
    far_limit: float


@dataclass(frozen=True, slots=True)
class Fold:
    tuned_on: tuple[str, ...]
    tested_on: tuple[str, ...]
    tuned: Tuned
    held_out: dict[str, Any]  # summarise() of the tested files with the tuned configuration
    results: list[FileResult]


@dataclass(frozen=True, slots=True)
class CrossValidation:
    grid: Grid
    folds: tuple[Fold, Fold]
    pooled: dict[str, Any]  # both held-out halves together: every file, none scored by a setting it chose

    def to_dict(self) -> dict[str, Any]:
        return {
            "pooled_held_out": self.pooled,
            "configurations_per_fold": self.grid.size,
            "tuning_far_limit": self.folds[0].tuned.far_limit,
            "folds": [
                {
                    "tuned_on": list(fold.tuned_on),
                    "tested_on": list(fold.tested_on),
                    "config": fold.tuned.config.to_dict(),
                    "tuning": {
                        "f1": fold.tuned.scores.f1,
                        "far": fold.tuned.scores.far,
                        "mar": fold.tuned.scores.mar,
                        "tried": fold.tuned.tried,
                        "feasible": fold.tuned.feasible,
                    },
                    "held_out": fold.held_out,
                }
                for fold in self.folds
            ],
        }


def _natural_key(name: str) -> tuple[Any, ...]:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def split_files(files: Sequence[SkabFile]) -> tuple[list[SkabFile], list[SkabFile]]:
    """Parts A and B: alternate files of each directory, in natural order."""
    by_directory: dict[str, list[SkabFile]] = {}
    for skab in files:
        by_directory.setdefault(str(PurePosixPath(skab.name).parent), []).append(skab)
    part_a: list[SkabFile] = []
    part_b: list[SkabFile] = []
    for directory in sorted(by_directory):
        ordered = sorted(
            by_directory[directory], key=lambda skab: _natural_key(PurePosixPath(skab.name).name)
        )
        part_a += ordered[0::2]
        part_b += ordered[1::2]
    return part_a, part_b


@dataclass(frozen=True, slots=True)
class _Fitted:
    """One file's detector scores for one fit: training rows and test rows."""

    train: np.ndarray
    test: np.ndarray
    truth: np.ndarray


def _fit(skab: SkabFile, config: ModelConfig) -> _Fitted:
    # The same steps as evaluate_file: fit on the first TRAIN_ROWS rows, features over all rows.
    model = fit_model(skab.values[:TRAIN_ROWS], skab.signals, config, name=skab.name).model
    scores = model.detector.score(window_features(model.features, skab.values))
    return _Fitted(scores[:TRAIN_ROWS], scores[TRAIN_ROWS:], skab.anomaly[TRAIN_ROWS:])


def _better(candidate: BinaryScores, best: BinaryScores | None, far_limit: float) -> bool:
    if best is None:
        return True
    feasible, best_feasible = candidate.far < far_limit, best.far < far_limit
    if feasible != best_feasible:
        return feasible
    if not feasible:
        return candidate.far < best.far
    return (candidate.f1, -candidate.far) > (best.f1, -best.far)


def tune(
    files: Sequence[SkabFile],
    grid: Grid = GRID,
    base: ModelConfig = EVALUATED_CONFIG,
    far_limit: float = TUNING_FAR_LIMIT,
) -> Tuned:
    """The configuration of ``grid`` that SKAB's protocol scores best on ``files`` (see the module doc)."""
    best: BinaryScores | None = None
    chosen = base
    tried = feasible = 0
    for window, stats, explained in itertools.product(grid.windows, grid.stats, grid.explained_variance):
        fit_config = replace(base, window=window, stats=stats, explained_variance=explained)
        fitted = [_fit(skab, fit_config) for skab in files]
        for rate, margin in itertools.product(grid.false_alarm_rate, grid.margin):
            thresholds = [calibrate(f.train, rate, margin).threshold for f in fitted]
            for consecutive, release in itertools.product(grid.consecutive, grid.release):
                tp = fp = tn = fn = 0
                for f, threshold in zip(fitted, thresholds, strict=True):
                    predicted, _ = flag_runs(f.test, threshold, consecutive, release=release)
                    tp += int(np.sum(f.truth & predicted))
                    fp += int(np.sum(~f.truth & predicted))
                    fn += int(np.sum(f.truth & ~predicted))
                    tn += int(np.sum(~f.truth & ~predicted))
                scores = BinaryScores(tp, fp, tn, fn)
                tried += 1
                feasible += scores.far < far_limit
                if _better(scores, best, far_limit):
                    best = scores
                    chosen = replace(
                        fit_config,
                        false_alarm_rate=rate,
                        margin=margin,
                        consecutive=consecutive,
                        release=release,
                    )
    if best is None:
        raise ValueError("tune: no files or an empty grid")
    return Tuned(chosen, best, tried, feasible, far_limit)


def _fold(
    tune_files: list[SkabFile], test_files: list[SkabFile], grid: Grid, base: ModelConfig, far_limit: float
) -> Fold:
    tuned = tune(tune_files, grid, base, far_limit)
    results = [evaluate_file(skab, tuned.config) for skab in test_files]
    return Fold(
        tuned_on=tuple(skab.name for skab in tune_files),
        tested_on=tuple(skab.name for skab in test_files),
        tuned=tuned,
        held_out=summarise(results, tuned.config.to_dict()),
        results=results,
    )


def cross_validate(
    files: Sequence[SkabFile],
    grid: Grid = GRID,
    base: ModelConfig = EVALUATED_CONFIG,
    far_limit: float = TUNING_FAR_LIMIT,
) -> CrossValidation:
    """Two folds over :func:`split_files`; raises ValueError when a part would be empty."""
    part_a, part_b = split_files(files)
    if not part_a or not part_b:
        raise ValueError("cross-validation needs at least two labelled files")
    first = _fold(part_a, part_b, grid, base, far_limit)
    second = _fold(part_b, part_a, grid, base, far_limit)
    pooled = summarise(
        first.results + second.results,
        {"fold_a_to_b": first.tuned.config.to_dict(), "fold_b_to_a": second.tuned.config.to_dict()},
    )
    return CrossValidation(grid, (first, second), pooled)


def _config_line(config: ModelConfig) -> str:
    return (
        f"window {config.window}, stats {'+'.join(config.stats)}, explained variance "
        f"{config.explained_variance:g}, false-alarm rate {config.false_alarm_rate:g}, margin "
        f"{config.margin:g}, consecutive {config.consecutive}, release {config.release:g}"
    )


def format_cross_validation(validation: CrossValidation) -> str:
    limit = validation.folds[0].tuned.far_limit
    lines = [
        f"Two-fold cross-validation over files: {validation.grid.size} configurations per fold, the best "
        f"F1 with FAR below {100 * limit:.1f} % on the tuning files is chosen (docs/anomaly.md)"
    ]
    for index, fold in enumerate(validation.folds):
        name = ("A -> B", "B -> A")[index]
        tuned, held = fold.tuned, fold.held_out
        lines += [
            "",
            f"Fold {name}: tuned on {len(fold.tuned_on)} files, tested on {len(fold.tested_on)} others",
            f"  chosen: {_config_line(tuned.config)}",
            f"  tuning files (in-sample): F1 {tuned.scores.f1:.3f}  FAR {100 * tuned.scores.far:.2f} %  "
            f"MAR {100 * tuned.scores.mar:.2f} %  ({tuned.feasible} of {tuned.tried} below FAR "
            f"{100 * limit:.1f} %)",
            f"  held-out files:           F1 {held['f1']:.3f}  FAR {100 * held['far']:.2f} %  "
            f"MAR {100 * held['mar']:.2f} %  NAB {held['nab_standard']:.2f} / {held['nab_lowfp']:.2f} / "
            f"{held['nab_lowfn']:.2f}",
        ]
    pooled = validation.pooled
    met = pooled["f1"] > 0.78 and pooled["far"] < GOAL_FAR
    lines += [
        "",
        f"Both held-out halves pooled: F1 {pooled['f1']:.3f}, FAR {100 * pooled['far']:.2f} %: the goal "
        f"(F1 > 0.78 with FAR < {100 * GOAL_FAR:.2f} %) is {'met' if met else 'NOT met'}",
    ]
    return "\n".join(lines)
