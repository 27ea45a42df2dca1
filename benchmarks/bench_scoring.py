"""Isolation-forest scoring speed: the numba walker vs scikit-learn's ``score_samples``, same run, same model.

Run: ``.venv/bin/python benchmarks/bench_scoring.py`` (prints a Markdown table; ``--quick`` for CI).
Each measurement repeats scoring one batch for a fixed wall time and reports rows/s; scores are
checked equal (rtol 1e-12) before timing.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from functools import partial

import numpy as np
from sklearn.ensemble import IsolationForest

from benchmarks.results import Figure, best_rate, rate_figure
from models.anomaly.isolation_forest import compile_forest

__all__ = ["figures", "main"]

BATCH_SIZES = (1, 64, 1024)
TARGET_ROWS_PER_S = 200_000  # issue 5: at least this at batch sizes 1 to 64
_FEATURES = 16  # e.g. 8 signals x (mean, std)


def _rate(score: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, seconds: float) -> float:
    score(batch)  # warm up (numba compile, caches)
    rows = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        score(batch)
        rows += batch.shape[0]
    return rows / elapsed


def _forest(rng: np.random.Generator) -> IsolationForest:
    return IsolationForest(n_estimators=100, random_state=0).fit(rng.normal(size=(20_000, _FEATURES)))


def figures(quick: bool) -> list[Figure]:
    """Rows/s of the numba walker against scikit-learn's score_samples, and against the target."""
    rng = np.random.default_rng(0)
    forest = _forest(rng)
    compiled = compile_forest(forest)
    min_time = 0.1 if quick else 0.5
    found = []
    for size in BATCH_SIZES:
        batch = rng.normal(size=(size, _FEATURES)) * 2
        np.testing.assert_allclose(compiled.score_samples(batch), forest.score_samples(batch), rtol=1e-12)
        slow = best_rate(partial(forest.score_samples, batch), size, min_time_s=min_time)
        fast = best_rate(partial(compiled.score_samples, batch), size, min_time_s=min_time)
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
    cpu = platform.processor() or platform.machine()
    print(f"IsolationForest(n_estimators=100, max_samples=256), {n_features} features; {cpu}")
    print()
    print("| batch | scikit-learn rows/s | numba walker rows/s | ratio |")
    print("|---:|---:|---:|---:|")
    for size in BATCH_SIZES:
        batch = rng.normal(size=(size, n_features)) * 2
        np.testing.assert_allclose(compiled.score_samples(batch), forest.score_samples(batch), rtol=1e-12)
        slow = _rate(forest.score_samples, batch, seconds)
        fast = _rate(compiled.score_samples, batch, seconds)
        print(f"| {size} | {slow:,.0f} | {fast:,.0f} | {fast / slow:,.0f}x |")


if __name__ == "__main__":
    main()
