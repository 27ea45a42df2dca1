"""The heap forest's float32 thresholds: scikit-learn's left/right decision at every split, exactly."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from models.anomaly.heap_forest import float32_floor
from models.anomaly.isolation_forest import compile_forest

_F32 = np.float32


def _neighbours(values: np.ndarray) -> np.ndarray:
    """Each float32 value, the next one down and the next one up: the values a decision can flip on."""
    with np.errstate(over="ignore"):  # beyond float32's range: inf, and the largest float32 below it
        v = values.astype(_F32)
        return np.stack([np.nextafter(v, _F32(-np.inf)), v, np.nextafter(v, _F32(np.inf))], axis=1)


def test_float32_floor_gives_the_float64_decision_for_every_float32_input() -> None:
    rng = np.random.default_rng(0)
    thresholds = np.concatenate(
        [
            rng.normal(size=2000) * 10.0 ** rng.integers(-40, 40, size=2000),  # rarely float32-representable
            rng.normal(size=200).astype(_F32).astype(np.float64),  # representable
            [0.0, -0.0, 1e-45, -1e-45, 3.4e38, 3.4028235677973366e38, -3.4028235677973366e38, 1e300, -1e300],
            [np.inf],  # padding nodes
        ]
    )
    floor = float32_floor(thresholds)
    assert floor.dtype == np.float32
    assert (floor.astype(np.float64) <= thresholds).all()
    candidates = np.concatenate(
        [_neighbours(thresholds), _neighbours(floor.astype(np.float64))], axis=1
    ).astype(_F32)
    candidates = np.concatenate([candidates, np.full((len(thresholds), 2), [-np.inf, np.inf], _F32)], axis=1)
    with np.errstate(over="ignore"):
        sklearn_right = ~(candidates.astype(np.float64) <= thresholds[:, None])  # its C code's test
    np.testing.assert_array_equal(candidates > floor[:, None], sklearn_right)


def _unrounded(threshold: float) -> np.ndarray:
    """float64 values around a split that are not float32: each rounds to the float32 floor of the
    threshold or to the float32 above it, so only a walk that rounds the row first decides as
    scikit-learn does (its ``X`` is float32)."""
    floor = float32_floor(np.array([threshold]))[0]
    low, high = float(floor), float(np.nextafter(floor, _F32(np.inf)))
    middle = (low + high) / 2.0
    return np.array(
        [
            np.nextafter(low, np.inf),  # rounds down onto the floor: goes left
            np.nextafter(middle, -np.inf),
            middle,  # a tie: rounds to the even one
            np.nextafter(middle, np.inf),  # rounds up: goes right
            np.nextafter(threshold, -np.inf),
            threshold,
            np.nextafter(threshold, np.inf),
        ]
    )


def _forest_and_rows(seed: int, values: Callable[[float], np.ndarray]) -> tuple[IsolationForest, np.ndarray]:
    """A small forest and, for every split, rows whose split column takes each of ``values(threshold)``."""
    rng = np.random.default_rng(seed)
    forest = IsolationForest(n_estimators=20, max_samples=64, random_state=seed).fit(
        rng.normal(size=(300, 4))
    )
    rows = []
    for estimator, subset in zip(forest.estimators_, forest.estimators_features_, strict=True):
        tree = estimator.tree_
        for node in np.flatnonzero(tree.children_left != -1):
            column = int(subset[tree.feature[node]])
            for value in values(float(tree.threshold[node])):
                row = rng.normal(size=4)
                row[column] = value
                rows.append(row)
    return forest, np.array(rows)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "values",
    [lambda t: _neighbours(np.array([t]))[0].astype(np.float64), _unrounded],
    ids=["float32", "float64"],
)
def test_rows_on_a_split_threshold_score_like_sklearn(
    seed: int, values: Callable[[float], np.ndarray]
) -> None:
    """Rows whose value is at a split threshold: a float32 neighbour of it (only the exact rounding of
    the threshold sends them the way scikit-learn does) or a float64 value between two float32 ones
    (only the row's rounding to float32 does)."""
    forest, x = _forest_and_rows(seed, values)
    compiled = compile_forest(forest)
    assert compiled.heap is not None
    np.testing.assert_allclose(compiled.score_samples(x), forest.score_samples(x), rtol=1e-12, atol=0)
    for batch in (1, 3):  # the batch-1 loop and the tree-block loop
        for k in range(0, 60, batch):
            np.testing.assert_allclose(
                compiled.score_samples(x[k : k + batch]), forest.score_samples(x[k : k + batch]), rtol=1e-12
            )


def test_the_fast_path_takes_only_what_the_kernel_may_read() -> None:
    """After the first call the kernel is called straight away: whatever it must not read still
    raises the checked path's errors, and valid arrays it was not sealed for are still scored."""
    rng = np.random.default_rng(4)
    forest = IsolationForest(n_estimators=10, random_state=4).fit(rng.normal(size=(200, 3)))
    compiled = compile_forest(forest)
    x = rng.normal(size=(5, 3))
    expected = forest.score_samples(x)
    np.testing.assert_allclose(compiled.score_samples(x), expected, rtol=1e-12)  # seals the kernel
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        compiled.score_samples(np.zeros((1, 4)))  # the kernel's own width check
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        compiled.score_samples(np.zeros(3))
    with pytest.raises(ValueError, match="float64"):
        compiled.anomaly_scores(x.astype(np.float32))
    with pytest.raises(ValueError, match="numpy array"):
        compiled.score_samples(x.tolist())
    read_only = x.copy()
    read_only.flags.writeable = False
    np.testing.assert_allclose(compiled.score_samples(read_only), expected, rtol=1e-12)
    np.testing.assert_allclose(compiled.score_samples(np.asfortranarray(x)), expected, rtol=1e-12)
    np.testing.assert_allclose(compiled.anomaly_scores(x[:1]), -expected[:1], rtol=1e-12)
