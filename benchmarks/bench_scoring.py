"""Isolation-forest scoring speed: the numba walker vs scikit-learn's ``score_samples``, same run, same model.

Run: ``.venv/bin/python -m benchmarks.bench_scoring`` (prints a Markdown table; ``--quick`` for CI).
Each measurement scores batches for a fixed wall time and reports rows/s; scores are checked equal
to scikit-learn's (rtol 1e-12) before timing. Every call gets rows it has not seen (batches cycle
through a pool of 32k rows), as in the stream: scoring the same batch again and again lets the
CPU's branch predictor learn that batch's paths through the trees, which flattered the old node
walker by ~50 % at batch 1.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from sklearn.ensemble import IsolationForest

from benchmarks.results import Figure, best_rate, rate_figure
from models.anomaly.isolation_forest import IsolationForestDetector, compile_forest
from models.anomaly.scoring import AnomalyModel, AnomalyWindow, score_batch
from models.anomaly.training import ModelConfig, fit_model

__all__ = ["figures", "main"]

BATCH_SIZES = (1, 8, 64, 1024)
TARGET_ROWS_PER_S = 200_000  # issue 5: at least this at batch sizes 1 to 64
_FEATURES = 16  # e.g. 8 signals x (mean, std)
_POOL_ROWS = 1 << 15

TITLE = "Anomaly scoring"
NOTES = """
One fitted `IsolationForest(n_estimators=100)` (max_samples 256, so trees of depth <= 8) over 16
features, scored by `CompiledForest.score_samples` (the padded, branchless walk of
`models/anomaly/heap_forest.py`: float32 thresholds rounded toward -inf against the batch rounded
to float32 once, uint16 columns and leaf indices, unsigned node indices, trees in lockstep blocks
of eight and a last block of four, and a sealed kernel called straight away) and by
scikit-learn's `score_samples`, on the same batches. Every call
gets fresh rows (batches cycle through a pool of 32k rows), so the branch predictor cannot learn a
batch's paths. Scores are checked equal to scikit-learn's (rtol 1e-12) before timing. The issue's
target is 200k rows/s at batch sizes 1 to 64 (`.vs_target`).

`scoring.path.*` is the whole per-message path the worker runs for a machine with a model
(`models.anomaly.scoring.score_batch`: align the 8 signals' readings into rows, window features with
the machine's history, score, consecutive-row flags, top features when flagged), one message of
`b` readings per signal per call, against the same path with scikit-learn's `score_samples` in the
detector's place. Its rows/s at batch 1 is bounded by that path's per-call Python, not by scoring.
"""


class _Batches:
    """Calls ``score`` on the next batch of a pool each time: every call sees rows it has not seen."""

    def __init__(self, score: Callable[[np.ndarray], np.ndarray], pool: np.ndarray, size: int) -> None:
        self._score = score
        self._batches = [pool[k : k + size] for k in range(0, pool.shape[0] - size + 1, size)]
        self._next = 0

    def __call__(self) -> None:
        self._score(self._batches[self._next])
        self._next = (self._next + 1) % len(self._batches)


def _rate(score: Callable[[np.ndarray], np.ndarray], pool: np.ndarray, size: int, seconds: float) -> float:
    run = _Batches(score, pool, size)
    run()  # warm up (numba compile, caches)
    calls = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        run()
        calls += 1
    return calls * size / elapsed


def _forest(rng: np.random.Generator) -> IsolationForest:
    return IsolationForest(n_estimators=100, random_state=0).fit(rng.normal(size=(20_000, _FEATURES)))


_PATH_SIGNALS = tuple(f"s{i}" for i in range(_FEATURES // 2))


class _SklearnDetector(IsolationForestDetector):
    """The same forest scored by scikit-learn, so the path differs from linepulse's only there."""

    def score(self, features: np.ndarray) -> np.ndarray:
        scores: np.ndarray = -self.estimator.score_samples(features)
        return scores


class _Messages:
    """Calls ``score_batch`` on the next message of a stream of one machine's readings."""

    def __init__(self, model: AnomalyModel, pool: np.ndarray, size: int) -> None:
        self._model = model
        self._window: AnomalyWindow | None = None
        self._messages = []
        for k in range(0, pool.shape[0] - size + 1, size):
            ts = np.arange(k, k + size, dtype=np.int64) * 1000
            self._messages.append(
                [
                    (name, ts, np.ascontiguousarray(pool[k : k + size, i]))
                    for i, name in enumerate(_PATH_SIGNALS)
                ]
            )
        self._next = 0

    def __call__(self) -> None:
        self._window, _ = score_batch(self._model, self._window, self._messages[self._next])
        self._next = (self._next + 1) % len(self._messages)


def _path_figures(rng: np.random.Generator, min_time: float) -> list[Figure]:
    config = ModelConfig(detector="isolation_forest", window=20, stats=("mean", "std"), n_estimators=100)
    fitted = fit_model(rng.normal(size=(20_000, len(_PATH_SIGNALS))), _PATH_SIGNALS, config, name="bench")
    model = fitted.model
    assert isinstance(model.detector, IsolationForestDetector)
    sklearn_model = replace(
        model, detector=_SklearnDetector(model.detector.estimator, model.detector.compiled)
    )
    readings = rng.normal(size=(_POOL_ROWS, len(_PATH_SIGNALS)))
    found = []
    for size in (1, 64):
        fast = best_rate(_Messages(model, readings, size), size, min_time_s=min_time)
        slow = best_rate(_Messages(sklearn_model, readings, size), size, min_time_s=min_time)
        found.append(
            rate_figure(
                f"scoring.path.b{size}.vs_sklearn",
                fast,
                slow,
                "rows/s",
                what=f"the worker's scoring path (8 signals, window 20), {size} reading(s) per signal",
                vs="the same path with scikit-learn score_samples",
            )
        )
    return found


def figures(quick: bool) -> list[Figure]:
    """Rows/s of the numba walker against scikit-learn's score_samples, and against the target."""
    rng = np.random.default_rng(0)
    forest = _forest(rng)
    compiled = compile_forest(forest)
    pool = rng.normal(size=(_POOL_ROWS, _FEATURES)) * 2
    min_time = 0.1 if quick else 0.5
    found = []
    for size in BATCH_SIZES:
        np.testing.assert_allclose(
            compiled.score_samples(pool[:size]), forest.score_samples(pool[:size]), rtol=1e-12
        )
        slow = best_rate(_Batches(forest.score_samples, pool, size), size, min_time_s=min_time)
        fast = best_rate(_Batches(compiled.score_samples, pool, size), size, min_time_s=min_time)
        what = f"IsolationForest(100 trees) scores, batch of {size}"
        found.append(
            rate_figure(
                f"scoring.b{size}.vs_sklearn",
                fast,
                slow,
                "rows/s",
                what=what,
                vs="scikit-learn score_samples",
            )
        )
        found.append(
            rate_figure(
                f"scoring.b{size}.vs_target", fast, TARGET_ROWS_PER_S, "rows/s", what=what, vs="200k rows/s"
            )
        )
    return found + _path_figures(rng, min_time)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="0.2 s per measurement instead of 2 s")
    args = parser.parse_args()
    seconds = 0.2 if args.quick else 2.0
    rng = np.random.default_rng(0)
    n_features = _FEATURES
    forest = _forest(rng)
    compiled = compile_forest(forest)
    pool = rng.normal(size=(_POOL_ROWS, n_features)) * 2
    cpu = platform.processor() or platform.machine()
    print(f"IsolationForest(n_estimators=100, max_samples=256), {n_features} features; {cpu}")
    print()
    print("| batch | scikit-learn rows/s | numba walker rows/s | ratio |")
    print("|---:|---:|---:|---:|")
    for size in BATCH_SIZES:
        np.testing.assert_allclose(
            compiled.score_samples(pool[:size]), forest.score_samples(pool[:size]), rtol=1e-12
        )
        slow = _rate(forest.score_samples, pool, size, seconds)
        fast = _rate(compiled.score_samples, pool, size, seconds)
        print(f"| {size} | {slow:,.0f} | {fast:,.0f} | {fast / slow:,.0f}x |")
    print()
    for figure in _path_figures(rng, seconds):
        print(f"{figure.name}: {figure.value:,.0f} rows/s, {figure.ratio:,.1f}x {figure.vs}")


if __name__ == "__main__":
    main()
