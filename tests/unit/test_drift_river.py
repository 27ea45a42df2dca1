"""Cross-check: our numba Page-Hinkley and ADWIN detect at exactly the readings river's do."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

river_drift = pytest.importorskip("river.drift")

from models.drift import ADWIN, PageHinkley  # noqa: E402


def _series(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [
            rng.normal(0.0, 1.0, 2500),
            rng.normal(1.5, 1.0, 2500),  # step up
            rng.normal(-1.0, 2.0, 3000),  # step down, more noise
            rng.normal(0.0, 1.0, 3000) + np.linspace(0.0, 3.0, 3000),  # ramp
            rng.integers(0, 2, 2000).astype(np.float64),  # binary stream (classification errors)
            rng.standard_t(3, 2000) * 5.0 + 100.0,  # heavy tails, offset and scale
        ]
    )


def _river_hits(detector: Any, values: np.ndarray) -> list[int]:
    hits = []
    for i, x in enumerate(values.tolist()):
        detector.update(x)
        if detector.drift_detected:
            hits.append(i)
    return hits


PH_PARAMS: list[dict[str, Any]] = [
    {},
    {"threshold": 20.0, "delta": 0.1, "min_instances": 100},
    {"mode": "up", "threshold": 10.0},
    {"mode": "down", "alpha": 0.999, "threshold": 10.0},
]
ADWIN_PARAMS: list[dict[str, Any]] = [
    {},
    {"delta": 0.05, "clock": 1},
    {"delta": 0.2, "clock": 4, "max_buckets": 2, "min_window_length": 1, "grace_period": 0},
    {"max_buckets": 3, "min_window_length": 10, "grace_period": 50},
]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("params", PH_PARAMS)
def test_page_hinkley_equals_river(seed: int, params: dict[str, Any]) -> None:
    values = _series(seed)
    expected = _river_hits(river_drift.PageHinkley(**params), values)
    assert expected, "the series must make river detect something, or the test proves nothing"
    assert PageHinkley(**params).detect(values).tolist() == expected


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("params", ADWIN_PARAMS)
def test_adwin_equals_river(seed: int, params: dict[str, Any]) -> None:
    values = _series(seed)
    expected = _river_hits(river_drift.ADWIN(**params), values)
    assert expected
    assert ADWIN(**params).detect(values).tolist() == expected


@pytest.mark.parametrize("cut", [1, 77, 4096, 9000])
def test_batches_and_single_updates_agree(cut: int) -> None:
    values = _series(7)
    whole = ADWIN(delta=0.01).detect(values).tolist()
    split = ADWIN(delta=0.01)
    first = split.detect(values[:cut]).tolist()
    second = [cut + i for i in split.detect(values[cut:]).tolist()]
    assert first + second == whole
    one = PageHinkley(threshold=20.0)
    assert [i for i, x in enumerate(values[:3000].tolist()) if one.update(x)] == (
        PageHinkley(threshold=20.0).detect(values[:3000]).tolist()
    )


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("params", ADWIN_PARAMS)
def test_adwin_with_the_monitors_row_cap_equals_river_inside_the_cap(
    seed: int, params: dict[str, Any]
) -> None:
    """The monitor caps ADWIN's rows (state size); while the window fits, detections stay river's.

    The series here (2,500 readings, a step in the middle) keeps every window inside the cap of
    each parameter set (at least 7 rows: 5 * (2**7 - 1) readings for 5 buckets); beyond it the
    capped ADWIN forgets its oldest bucket where river's window keeps growing.
    """
    from models.signal_monitor import adwin_rows

    rng = np.random.default_rng(seed)
    values = np.concatenate(
        [rng.normal(0.0, 1.0, 600), rng.normal(2.0, 1.0, 600), rng.normal(0.0, 1.0, 1300)]
    )
    expected = _river_hits(river_drift.ADWIN(**params), values)
    assert expected
    rows = adwin_rows(int(params.get("max_buckets", 5)))
    assert ADWIN(**params, max_rows=rows).detect(values).tolist() == expected
