"""The cycle-time sketch: quantiles within the relative accuracy, exact merges, JSON round trips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.quantile_sketch import QuantileSketch

values_strategy = st.lists(
    st.floats(min_value=0.01, max_value=10_000, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=400,
)


def reference_quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q, method="lower"))


@settings(max_examples=150, deadline=None)
@given(values=values_strategy, q=st.sampled_from([0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0]))
def test_quantiles_are_within_the_relative_accuracy(values: list[float], q: float) -> None:
    array = np.array(values)
    sketch = QuantileSketch(relative_accuracy=0.01)
    sketch.add(array)
    answer = sketch.quantile(q)
    truth = reference_quantile(array, q)
    assert answer is not None
    assert abs(answer - truth) <= 0.01 * truth * (1 + 1e-12)


@settings(max_examples=100, deadline=None)
@given(a=values_strategy, b=values_strategy)
def test_merging_equals_adding_everything_to_one_sketch(a: list[float], b: list[float]) -> None:
    left, right, whole = QuantileSketch(), QuantileSketch(), QuantileSketch()
    left.add(np.array(a))
    right.add(np.array(b))
    whole.add(np.array(a + b))
    left.merge(right)
    assert left.bins == whole.bins and left.count == whole.count


def test_round_trip_and_bounded_size_on_realistic_cycle_times() -> None:
    rng = np.random.default_rng(7)
    cycles = rng.gamma(shape=50, scale=0.25, size=100_000)  # ~12.5 s with jitter
    sketch = QuantileSketch()
    for batch in np.array_split(cycles, 100):
        sketch.add(batch)
    restored = QuantileSketch.from_dict(sketch.to_dict())
    assert restored == sketch
    assert len(sketch.bins) < 150  # clustered values stay in few bins
    for q in (0.5, 0.95, 0.99):
        truth = reference_quantile(cycles, q)
        assert abs(sketch.quantile(q) - truth) <= 0.01 * truth  # type: ignore[operator]


def test_bad_input_is_refused() -> None:
    sketch = QuantileSketch()
    with pytest.raises(ValueError, match="positive and finite"):
        sketch.add(np.array([1.0, -2.0]))
    with pytest.raises(ValueError, match="positive and finite"):
        sketch.add(np.array([np.nan]))
    with pytest.raises(ValueError, match="float64"):
        sketch.add(np.array([1, 2]))
    assert QuantileSketch().quantile(0.5) is None
    with pytest.raises(ValueError, match="same relative accuracy"):
        sketch.merge(QuantileSketch(relative_accuracy=0.05))


@settings(max_examples=60, deadline=None)
@given(values=values_strategy)
def test_one_value_at_a_time_bins_like_a_batch(values: list[float]) -> None:
    batch, single = QuantileSketch(), QuantileSketch()
    batch.add(np.array(values))
    for value in values:
        single.add_value(value)
    assert single == batch
