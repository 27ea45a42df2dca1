"""A fitted anomaly model applied to one machine's batches of readings, as the stream and ``analyze`` do.

Per batch (:func:`score_batch`):

1. **Rows.** The readings of the model's signals are aligned into rows (:func:`align_rows`): one
   row per reading of the model's first signal (the *clock*); every other signal contributes its
   newest reading at or before that instant, held across batches for at most the signal's hold
   bound (:attr:`AnomalyModel.hold_ms`, learnt in training). A row without a value of every signal
   (one never seen yet, or silent for longer) is skipped.
2. **Features** of those rows by :func:`models.anomaly.features.window_features`, with the machine's
   history of the last ``window - 1`` rows, which :class:`AnomalyWindow` carries between batches.
3. **Scores** by the model's detector, compared with the calibrated threshold.
4. **Flags**: a row is flagged once ``consecutive`` rows in a row have scored above the threshold
   (the run carries across batches), which suppresses isolated noise spikes. An anomaly *episode*
   (one alert) lasts until ``resolve_after`` rows in a row were not flagged (``AnomalyWindow.quiet``),
   so an intermittent burst is one alert, not one per batch.

:class:`AnomalyWindow` is the per-machine state and serialises to JSON for the machine's table
state, so a restarted worker computes the same features as one that never stopped. It names the
model version it belongs to: when a new version is picked up, the history is kept only if the new
model uses the same signals (the rows do not depend on the model otherwise).

**Unscored.** A machine the model serves but that never sends some of the model's signals gets no
rows, so nothing would ever be scored, silently (a type's model serving a machine of the type that
sends other signals), nor one whose sensor fails or is renamed later. A batch that yields no row
while a model signal has not been seen since the model began serving the machine, or not for its
hold bound (at least :data:`UNSCORED_AFTER_MS`) of the batch's event time, adds its readings to
``AnomalyWindow.unseen_readings``; once
:data:`UNSCORED_AFTER_READINGS` readings spanning :data:`UNSCORED_AFTER_MS` of event time have come
so, ``AnomalyWindow.unscored`` names the signals still missing, for the service to report. Both
bounds must pass: a normal start, whose signals all arrive within seconds (in one message or one
message per signal), never gets there, nor does a machine that sent one reading and then nothing for
an hour. The count and the names clear at the first row (all signals seen) and when the model
version changes. Batches that yield rows, the steady state, pay one integer test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from models.anomaly.detector import Detector, FloatArray
from models.anomaly.features import FeatureSpec, next_history, window_features
from models.anomaly.row_alignment import NOT_BOUNDED, Series, align_rows
from models.numba_config import kernel
from models.plant import MachineSpec

__all__ = [
    "MAX_ROWS",
    "UNSCORED_AFTER_MS",
    "UNSCORED_AFTER_READINGS",
    "AnomalyModel",
    "AnomalyModels",
    "AnomalyWindow",
    "BatchScore",
    "align_rows",
    "flag_runs",
    "score_batch",
    "top_features",
]


MAX_ROWS: Final = 10_000_000  # bounds row counts a model sets (~4 months at 1 Hz); the kernels use int64
# A machine counts as unscored when a model signal has not come while this many readings of others
# came, over at least this much event time (module docstring).
UNSCORED_AFTER_READINGS: Final = 600
UNSCORED_AFTER_MS: Final = 10 * 60_000


@dataclass(frozen=True, slots=True)
class AnomalyModel:
    """What serving needs of a registered model version."""

    name: str
    version: str
    features: FeatureSpec
    detector: Detector
    threshold: float
    consecutive: int = 3
    release: float = 1.0  # hysteresis: a flag holds while the score exceeds release * threshold
    resolve_after: int = 300  # unflagged rows in a row before an anomaly episode counts as over
    # Per signal, how long its last reading stands in for it in a row (ms, learnt in training:
    # :func:`~models.anomaly.row_alignment.hold_bounds`); None: for ever (models trained before).
    hold_ms: tuple[int, ...] | None = None
    max_age_ms: npt.NDArray[np.int64] = field(init=False, repr=False, compare=False)
    silent_after_ms: npt.NDArray[np.int64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n_signals = len(self.features.signals)
        if self.hold_ms is not None:
            bounds = self.hold_ms
            if len(bounds) != n_signals or not all(1 <= bound <= NOT_BOUNDED for bound in bounds):
                raise ValueError(
                    f"model {self.name} {self.version}: hold_ms needs one bound in 1..{NOT_BOUNDED} ms "
                    f"per signal ({n_signals}), got {list(bounds)}"
                )
            silent = tuple(max(bound, UNSCORED_AFTER_MS) for bound in bounds)
        else:  # held for ever, as trained; silent after UNSCORED_AFTER_MS, as before bounds
            bounds = (NOT_BOUNDED,) * n_signals
            silent = (UNSCORED_AFTER_MS,) * n_signals
        object.__setattr__(self, "max_age_ms", np.array(bounds, dtype=np.int64))
        object.__setattr__(self, "silent_after_ms", np.array(silent, dtype=np.int64))
        if self.detector.n_features != len(self.features.names):
            raise ValueError(
                f"model {self.name} {self.version}: detector expects {self.detector.n_features} features, "
                f"the feature spec makes {len(self.features.names)}"
            )
        if (
            not 1 <= self.consecutive <= MAX_ROWS
            or not 1 <= self.resolve_after <= MAX_ROWS
            or not math.isfinite(self.threshold)
            or not 0.0 < self.release <= 1.0
        ):
            raise ValueError(
                f"model {self.name} {self.version}: needs consecutive and resolve_after in 1..{MAX_ROWS}, "
                "a finite threshold and release in (0, 1]"
            )

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


class AnomalyModels(Protocol):
    """Which model (if any) scores a machine now; the service implements it over the model registry."""

    def model_for(self, machine: MachineSpec) -> AnomalyModel | None: ...

    def may_still_serve(self, label: str) -> bool:
        """Whether the model version ``label`` may serve the machine yet though :meth:`model_for`
        gives nothing now (its registry could not be read): an open episode of it is not ended."""
        ...


@dataclass(slots=True)
class AnomalyWindow:
    """A machine's scoring state: rows of history, held signal values, the current above-threshold run."""

    model: str  # label of the model version that produced the state
    signals: tuple[str, ...]
    history: FloatArray  # (<= window - 1, len(signals))
    hold: FloatArray  # newest value per signal, NaN until seen
    hold_ts: npt.NDArray[np.int64]  # its time (epoch ms), -1 until seen
    run: int = 0
    quiet: int = 0  # unflagged rows since the last flagged one
    # Readings of batches that gave no row while a model signal was still unseen, and the event time
    # of the first of them (-1: none); ``unscored``: the signals missing once the bounds are passed.
    unseen_readings: int = 0
    unseen_from_ms: int = -1
    unscored: tuple[str, ...] = ()

    @classmethod
    def empty(cls, model: AnomalyModel) -> AnomalyWindow:
        n = len(model.features.signals)
        return cls(
            model=model.label,
            signals=model.features.signals,
            history=np.empty((0, n)),
            hold=np.full(n, np.nan),
            hold_ts=np.full(n, -1, dtype=np.int64),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "signals": list(self.signals),
            "history": self.history.tolist(),
            "hold": [None if math.isnan(v) else v for v in self.hold.tolist()],
            "hold_ts": self.hold_ts.tolist(),
            "run": self.run,
            "quiet": self.quiet,
            "unseen_readings": self.unseen_readings,
            "unseen_from_ms": self.unseen_from_ms,
            "unscored": list(self.unscored),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnomalyWindow:
        signals = tuple(str(s) for s in data["signals"])
        n = len(signals)
        history = np.asarray(data["history"], dtype=np.float64).reshape(-1, n)
        hold = np.array([np.nan if v is None else float(v) for v in data["hold"]], dtype=np.float64)
        return cls(
            model=str(data["model"]),
            signals=signals,
            history=np.ascontiguousarray(history),
            hold=hold,
            hold_ts=np.asarray(data["hold_ts"], dtype=np.int64),
            run=int(data["run"]),
            quiet=int(data.get("quiet", 0)),
            # .get: states stored before unscored machines were tracked still load.
            unseen_readings=int(data.get("unseen_readings", 0)),
            unseen_from_ms=int(data.get("unseen_from_ms", -1)),
            unscored=tuple(str(s) for s in data.get("unscored", ())),
        )

    def clear_unseen(self) -> None:
        """Forget the unscored count: the machine sent every signal, or another model serves it."""
        self.unseen_readings = 0
        self.unseen_from_ms = -1
        self.unscored = ()

    def note_unseen(self, series: Series, silent_after_ms: npt.NDArray[np.int64]) -> None:
        """A batch that gave no row: count its readings if a model signal is still unseen, or has
        been silent for longer than ``silent_after_ms`` (:attr:`AnomalyModel.silent_after_ms`: its
        hold bound, at least :data:`UNSCORED_AFTER_MS`) of the batch's event time (a sensor that failed or
        was renamed after the model began serving the machine: rows need a reading of every signal)."""
        readings, oldest, newest = 0, -1, -1
        for _, times, _ in series:
            if times.shape[0]:
                readings += int(times.shape[0])
                low, high = int(times.min()), int(times.max())
                oldest = low if oldest < 0 else min(oldest, low)
                newest = max(newest, high)
        silent = self.hold_ts < 0
        if newest >= 0:
            silent |= self.hold_ts < newest - silent_after_ms
        missing = np.flatnonzero(silent)
        if missing.shape[0] == 0:
            if self.unseen_readings:
                self.clear_unseen()
            return
        if readings == 0:
            return
        if self.unseen_from_ms < 0:
            self.unseen_from_ms = oldest
        self.unseen_readings += readings
        if (
            self.unseen_readings >= UNSCORED_AFTER_READINGS
            and newest - self.unseen_from_ms >= UNSCORED_AFTER_MS
        ):
            self.unscored = tuple(self.signals[int(s)] for s in missing)


@dataclass(frozen=True, slots=True)
class BatchScore:
    """One batch's verdict: rows scored, their scores, which rows are flagged, and the worst row."""

    ts_ms: npt.NDArray[np.int64]
    scores: FloatArray
    flagged: npt.NDArray[np.bool_]
    worst: int  # index of the highest-scoring flagged row, or of the highest score if none; -1: no rows
    top: tuple[tuple[str, float], ...] = field(default=())  # the worst flagged row's top features

    @property
    def rows(self) -> int:
        return int(self.scores.shape[0])

    @property
    def any_flagged(self) -> bool:
        return bool(self.flagged.any())


@kernel
def _runs_kernel(
    scores: FloatArray, threshold: float, release: float, consecutive: int, run: int, flagged: np.ndarray
) -> int:
    for i in range(scores.shape[0]):
        if run >= consecutive:
            # Active: hold the flag while the score stays above the (lower) release level.
            run = run + 1 if scores[i] > release else 0
        else:
            run = run + 1 if scores[i] > threshold else 0
        flagged[i] = run >= consecutive
    return run


def flag_runs(
    scores: FloatArray, threshold: float, consecutive: int, run: int = 0, release: float = 1.0
) -> tuple[npt.NDArray[np.bool_], int]:
    """Flags of rows that end a run of ``consecutive`` scores above ``threshold``; and the run after.

    Hysteresis: once flagged, rows stay flagged while they score above ``release * threshold``
    (``release`` in (0, 1]; 1 means no hysteresis). An anomaly whose score wavers around the
    threshold then reads as one condition rather than a string of short ones.
    """
    values = np.ascontiguousarray(scores, dtype=np.float64)
    flagged = np.zeros(values.shape[0], dtype=np.bool_)
    after = _runs_kernel(
        values, float(threshold), float(threshold) * float(release), int(consecutive), int(run), flagged
    )
    return flagged, int(after)


def top_features(model: AnomalyModel, features: FloatArray, k: int = 3) -> tuple[tuple[str, float], ...]:
    """The ``k`` features contributing most to one row's score (``features`` is one row, 2-D)."""
    contrib = model.detector.contributions(features)[0]
    order = np.argsort(-contrib, kind="stable")[:k]
    names = model.features.names
    return tuple((names[j], float(contrib[j])) for j in order)


def score_batch(
    model: AnomalyModel, window: AnomalyWindow | None, series: Series
) -> tuple[AnomalyWindow, BatchScore]:
    """Score one batch of a machine's readings; returns the new window state and the verdict."""
    if window is None or window.signals != model.features.signals:
        window = AnomalyWindow.empty(model)
    elif window.model != model.label:
        window.model = model.label
        window.run = 0
        window.clear_unseen()
    ts, rows = align_rows(window.signals, series, window.hold, window.hold_ts, model.max_age_ms)
    if rows.shape[0] == 0:
        window.note_unseen(series, model.silent_after_ms)
        return window, BatchScore(ts, np.empty(0), np.zeros(0, dtype=np.bool_), -1)
    if window.unseen_readings:
        window.clear_unseen()
    features = window_features(model.features, rows, window.history)
    window.history = next_history(model.features, rows, window.history)
    scores = model.detector.score(features)
    flagged, window.run = flag_runs(scores, model.threshold, model.consecutive, window.run, model.release)
    if flagged.any():
        window.quiet = int(flagged.shape[0] - 1 - np.flatnonzero(flagged)[-1])
    else:
        window.quiet += int(flagged.shape[0])
    if flagged.any():
        candidates = np.flatnonzero(flagged)
        worst = int(candidates[np.argmax(scores[candidates])])
        top = top_features(model, features[worst : worst + 1])
    else:
        worst = int(np.argmax(scores))
        top = ()
    return window, BatchScore(ts, scores, flagged, worst, top)
