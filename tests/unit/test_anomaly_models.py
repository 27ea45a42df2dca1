"""Anomaly models: features vs a naive reference, detectors vs scikit-learn / numpy, calibration, flags."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from models.anomaly.calibration import calibrate
from models.anomaly.features import STATS, FeatureSpec, next_history, window_features
from models.anomaly.isolation_forest import compile_forest, fit_isolation_forest
from models.anomaly.pca_t2q import fit_pca_t2q
from models.anomaly.scoring import flag_runs


def _naive_features(rows: np.ndarray, window: int) -> np.ndarray:
    out = []
    for i in range(rows.shape[0]):
        w = rows[max(0, i - window + 1) : i + 1]
        k = np.arange(w.shape[0], dtype=float)
        vector = []
        for s in range(rows.shape[1]):
            x = w[:, s]
            slope = np.polyfit(k, x, 1)[0] if w.shape[0] > 1 else 0.0
            vector += [x.mean(), x.std(), x.min(), x.max(), x[-1], slope]
        out.append(vector)
    return np.array(out)


def test_features_match_a_naive_reference() -> None:
    rows = np.random.default_rng(1).normal(size=(60, 3)) * [1.0, 10.0, 0.1] + [0.0, 50.0, -3.0]
    spec = FeatureSpec(("a", "b", "c"), window=7, stats=STATS)
    np.testing.assert_allclose(window_features(spec, rows), _naive_features(rows, 7), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("cuts", [[1], [3, 4, 20], [59], list(range(1, 60))])
def test_features_do_not_depend_on_batch_boundaries(cuts: list[int]) -> None:
    rows = np.random.default_rng(2).normal(size=(60, 2))
    spec = FeatureSpec(("a", "b"), window=10, stats=("mean", "std", "slope"))
    whole = window_features(spec, rows)
    history = None
    parts = []
    for chunk in np.split(rows, cuts):
        parts.append(window_features(spec, chunk, history))
        history = next_history(spec, chunk, history)
    assert np.array_equal(np.concatenate(parts), whole)  # bit-identical: no train/serve skew
    assert spec.names == ("a:mean", "a:std", "a:slope", "b:mean", "b:std", "b:slope")


def test_feature_spec_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="stats"):
        FeatureSpec(("a",), stats=("median",))
    with pytest.raises(ValueError, match="window"):
        FeatureSpec(("a",), window=0)
    with pytest.raises(ValueError, match="finite"):
        window_features(FeatureSpec(("a",)), np.array([[np.nan]]))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("n_estimators", "max_samples", "max_features"), [(100, "auto", 1.0), (25, 64, 1.0), (40, 0.5, 0.6)]
)
def test_isolation_forest_walker_equals_sklearn(
    seed: int, n_estimators: int, max_samples: int | float | str, max_features: float
) -> None:
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(600, 5))
    forest = IsolationForest(
        n_estimators=n_estimators, max_samples=max_samples, max_features=max_features, random_state=seed
    ).fit(train)
    compiled = compile_forest(forest)
    node_walk = dataclasses.replace(compiled, heap=None)
    for batch in (1, 7, 64):
        x = rng.normal(size=(batch, 5)) * 3
        np.testing.assert_allclose(compiled.score_samples(x), forest.score_samples(x), rtol=1e-12, atol=0)
        # Both layouts add the same leaf values in tree order: bit-identical sums, hence scores.
        assert np.array_equal(compiled.score_samples(x), node_walk.score_samples(x))
    # NaN follows the node's missing-value direction, as in scikit-learn.
    x = rng.normal(size=(7, 5))
    x[2, 1] = np.nan
    np.testing.assert_allclose(compiled.score_samples(x), forest.score_samples(x), rtol=1e-12)


def test_isolation_forest_scores_nan_rows_like_sklearn_in_a_mixed_batch() -> None:
    rng = np.random.default_rng(7)
    forest = IsolationForest(n_estimators=30, random_state=7).fit(rng.normal(size=(500, 4)))
    compiled = compile_forest(forest)
    assert compiled.heap is not None  # the padded, branchless walk
    x = rng.normal(size=(40, 4)) * 2
    x[3, 0] = np.nan
    x[10, :] = np.nan
    x[11, 2] = x[11, 3] = np.nan
    x[12, 1] = np.inf
    x[13, 3] = -np.inf
    np.testing.assert_allclose(compiled.score_samples(x), forest.score_samples(x), rtol=1e-12, atol=0)
    # Non-contiguous input (a column slice) is copied, not mis-read.
    wide = np.column_stack([x, x])[:, ::2]
    np.testing.assert_allclose(compiled.score_samples(wide), forest.score_samples(wide), rtol=1e-12)


def test_isolation_forest_deeper_than_the_padded_layout_uses_the_node_walk() -> None:
    rng = np.random.default_rng(8)
    train = rng.normal(size=(5000, 3))
    forest = IsolationForest(n_estimators=6, max_samples=1.0, random_state=8).fit(train)
    compiled = compile_forest(forest)
    assert compiled.heap is None  # depth 13 > MAX_HEAP_DEPTH
    x = rng.normal(size=(33, 3)) * 2
    x[5, 1] = np.nan
    np.testing.assert_allclose(compiled.score_samples(x), forest.score_samples(x), rtol=1e-12, atol=0)
    np.testing.assert_allclose(compiled.anomaly_scores(x), -forest.score_samples(x), rtol=1e-12, atol=0)


def test_isolation_forest_rejects_malformed_rows() -> None:
    forest = IsolationForest(n_estimators=4, random_state=0).fit(
        np.random.default_rng(0).normal(size=(50, 3))
    )
    compiled = compile_forest(forest)
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        compiled.score_samples(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="float64"):
        compiled.score_samples(np.zeros((2, 3), dtype=np.float32))
    assert compiled.score_samples(np.zeros((0, 3))).shape == (0,)


def test_isolation_forest_detector_negates_scores() -> None:
    train = np.random.default_rng(3).normal(size=(300, 4))
    detector = fit_isolation_forest(train, n_estimators=30, seed=3)
    probe = np.array([[0.0, 0.0, 0.0, 0.0], [8.0, -8.0, 8.0, 8.0]])
    scores = detector.score(probe)
    np.testing.assert_allclose(scores, -detector.estimator.score_samples(probe), rtol=1e-12)
    assert scores[1] > scores[0]
    credits = detector.contributions(probe)
    assert credits.shape == (2, 4)
    assert (credits >= 0).all() and credits[1].sum() > 0


def _t2q_reference(train: np.ndarray, test: np.ndarray, explained: float) -> np.ndarray:
    """Slow numpy T² + Q: eigen-decomposition of the standardised covariance, no scikit-learn."""
    mean, std = train.mean(axis=0), train.std(axis=0, ddof=1)
    z_train, z_test = (train - mean) / std, (test - mean) / std
    eigenvalues, vectors = np.linalg.eigh(np.cov(z_train.T))
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, vectors = eigenvalues[order], vectors[:, order]
    k = int(np.searchsorted(np.cumsum(eigenvalues) / eigenvalues.sum(), explained, side="right") + 1)
    p, lam = vectors[:, :k], eigenvalues[:k]

    def stats(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = z @ p
        return (t**2 / lam).sum(axis=1), ((z - t @ p.T) ** 2).sum(axis=1)

    t2_train, q_train = stats(z_train)
    t2, q = stats(z_test)
    return t2 / t2_train.mean() + q / q_train.mean()


@pytest.mark.parametrize("explained", [0.6, 0.85, 0.95])
def test_pca_t2q_equals_a_numpy_reference(explained: float) -> None:
    rng = np.random.default_rng(4)
    mixing = rng.normal(size=(6, 6))
    train = rng.normal(size=(400, 6)) @ mixing + 5.0
    test = rng.normal(size=(64, 6)) @ mixing * 1.5 + 5.0
    detector = fit_pca_t2q(train, explained)
    np.testing.assert_allclose(detector.score(test), _t2q_reference(train, test, explained), rtol=1e-8)
    contributions = detector.contributions(test)
    np.testing.assert_allclose(contributions.sum(axis=1), detector.score(test), rtol=1e-10)
    np.testing.assert_allclose(detector.score(train).mean(), 2.0, rtol=1e-10)


def test_pca_t2q_drops_constant_features() -> None:
    rng = np.random.default_rng(5)
    train = np.column_stack([rng.normal(size=200), np.full(200, 3.0), rng.normal(size=200)])
    detector = fit_pca_t2q(train, 0.9)
    assert detector.keep.tolist() == [0, 2]
    assert np.isfinite(detector.score(np.array([[0.0, 4.0, 0.0]]))).all()


def test_calibration_hits_its_false_alarm_target() -> None:
    scores = np.random.default_rng(6).exponential(size=10_000)
    calibration = calibrate(scores, false_alarm_rate=0.01)
    assert calibration.training_alarm_rate == pytest.approx(0.01, abs=0.001)
    assert calibrate(scores, 0.0, margin=2.0).threshold == pytest.approx(2 * scores.max())
    with pytest.raises(ValueError, match="false_alarm_rate"):
        calibrate(scores, 1.0)


def test_flags_need_consecutive_rows_and_carry_across_batches() -> None:
    scores = np.array([2.0, 2.0, 0.0, 2.0, 2.0, 2.0, 2.0])
    flagged, run = flag_runs(scores, 1.0, 3)
    assert flagged.tolist() == [False, False, False, False, False, True, True] and run == 4
    first, run = flag_runs(scores[:4], 1.0, 3)
    second, _ = flag_runs(scores[4:], 1.0, 3, run)
    assert np.concatenate([first, second]).tolist() == flagged.tolist()
    held, _ = flag_runs(np.array([2.0, 2.0, 0.8, 0.8, 0.2]), 1.0, 2, release=0.5)
    assert held.tolist() == [False, True, True, True, False]
