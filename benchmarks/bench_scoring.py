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

import numpy as np
from sklearn.ensemble import IsolationForest

from models.anomaly.isolation_forest import compile_forest

__all__ = ["main"]


def _rate(score: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, seconds: float) -> float:
    score(batch)  # warm up (numba compile, caches)
    rows = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        score(batch)
        rows += batch.shape[0]
    return rows / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="0.2 s per measurement instead of 2 s")
    args = parser.parse_args()
    seconds = 0.2 if args.quick else 2.0
    rng = np.random.default_rng(0)
    n_features = 16  # e.g. 8 signals x (mean, std)
    forest = IsolationForest(n_estimators=100, random_state=0).fit(rng.normal(size=(20_000, n_features)))
    compiled = compile_forest(forest)
    cpu = platform.processor() or platform.machine()
    print(f"IsolationForest(n_estimators=100, max_samples=256), {n_features} features; {cpu}")
    print()
    print("| batch | scikit-learn rows/s | numba walker rows/s | ratio |")
    print("|---:|---:|---:|---:|")
    for size in (1, 64, 1024):
        batch = rng.normal(size=(size, n_features)) * 2
        np.testing.assert_allclose(compiled.score_samples(batch), forest.score_samples(batch), rtol=1e-12)
        slow = _rate(forest.score_samples, batch, seconds)
        fast = _rate(compiled.score_samples, batch, seconds)
        print(f"| {size} | {slow:,.0f} | {fast:,.0f} | {fast / slow:,.0f}x |")


if __name__ == "__main__":
    main()
