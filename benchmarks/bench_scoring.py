"""Isolation-forest scoring speed: the numba walker vs scikit-learn's ``score_samples``, same run, same model.

Run: ``.venv/bin/python benchmarks/bench_scoring.py`` (prints a Markdown table; ``--quick`` for CI).
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

import numpy as np
from sklearn.ensemble import IsolationForest

from benchmarks.results import Figure, best_rate, rate_figure
from models.anomaly.isolation_forest import compile_forest

__all__ = ["figures", "main"]

BATCH_SIZES = (1, 8, 64, 1024)
TARGET_ROWS_PER_S = 200_000  # issue 5: at least this at batch sizes 1 to 64
_FEATURES = 16  # e.g. 8 signals x (mean, std)
_POOL_ROWS = 1 << 15

TITLE = "Anomaly scoring"
NOTES = """
One fitted `IsolationForest(n_estimators=100)` (max_samples 256, so trees of depth <= 8) over 16
features, scored by `CompiledForest.score_samples` (the padded, branchless walk of
`models/anomaly/heap_forest.py`) and by scikit-learn's `score_samples`, on the same batches. Every call
gets fresh rows (batches cycle through a pool of 32k rows), so the branch predictor cannot learn a
batch's paths. Scores are checked equal to scikit-learn's (rtol 1e-12) before timing. The issue's
target is 200k rows/s at batch sizes 1 to 64 (`.vs_target`).
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
    return found


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


if __name__ == "__main__":
    main()
