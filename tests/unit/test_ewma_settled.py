"""The EWMA chart's settled limit: the per-reading recurrence's detections, without its subnormals.

``decay = (1 - lam)**(2 i)`` sinks into the subnormal range and stays there; the chart sets it to 0
once ``1 - decay`` is exactly 1.0 (:data:`ewma_chart.SETTLED`). These tests hold the chart and the
monitor to a plain Python reference of the unflushed recurrence (the same IEEE operations, in the
same order) over streams long enough to get stuck: the same hits and ``w``, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from models import signal_monitor as sm
from models.drift import EwmaChart, ewma_chart


def _reference(
    z: np.ndarray, lam: float, limit: float, w: float, decay: float
) -> tuple[list[int], float, float]:
    """The hits, ``w`` and ``decay`` of :func:`ewma_chart.step` applied reading by reading."""
    keep = 1.0 - lam
    hits = []
    for i, zi in enumerate(z.tolist()):
        w = lam * zi + keep * w
        decay = decay * keep * keep
        if w * w > limit * limit * (lam / (2.0 - lam)) * (1.0 - decay):
            hits.append(i)
    return hits, w, decay


def test_settled_means_the_limit_no_longer_moves() -> None:
    assert 1.0 - ewma_chart.SETTLED == 1.0
    assert np.finfo(np.float64).tiny <= ewma_chart.SETTLED  # a normal number


@pytest.mark.parametrize("lam", [0.05, 0.2])
def test_chart_past_settling_detects_what_the_recurrence_gives(lam: float) -> None:
    rng = np.random.default_rng(2)
    values = rng.normal(0.0, 1.0, 20_000)
    values[12_000:12_400] += 0.9  # hits well after the decay got stuck
    chart = EwmaChart(lam=lam, L=3.0)
    hits: list[int] = []
    lo = 0
    while lo < values.shape[0]:
        hi = lo + int(rng.integers(1, 3000))
        hits += (chart.detect(values[lo:hi].copy()) + lo).tolist()
        lo = hi
    expected_hits, w, decay = _reference(values, lam, 3.0, 0.0, 1.0)
    assert 0.0 < decay < np.finfo(np.float64).tiny  # the stream got to the stuck subnormal
    assert hits == expected_hits and hits
    assert chart.state[ewma_chart.W] == w
    assert chart.state[ewma_chart.DECAY] == 0.0  # settled, where the recurrence is stuck


def test_monitor_past_settling_detects_the_same() -> None:
    params = sm.MonitorParams(baseline_n=200, ewma_lambda=0.05, ewma_L=3.0, enabled=1 << 2)  # EWMA only
    vector = params.vector()
    state = sm.new_state(params)
    rng = np.random.default_rng(3)
    values = rng.normal(10.0, 2.0, 30_000)
    values[20_000:20_300] += 1.5
    found: list[tuple[int, int, int]] = []
    lo = 0
    while lo < values.shape[0]:
        hi = lo + int(rng.integers(1, 4000))
        detections = sm.update(state, values[lo:hi].copy(), vector)
        found += [(d.count, d.first + lo, d.last + lo) for d in detections]
        lo = hi
    mu0, sigma = state[sm.MU0], state[sm.SIGMA]
    z = (values[params.baseline_n :] - mu0) * (1.0 / sigma)  # as the kernel standardises
    hits, w, decay = _reference(z, 0.05, 3.0, 0.0, 1.0)
    assert 0.0 < decay < np.finfo(np.float64).tiny
    assert state[sm.EWMA_AT + ewma_chart.DECAY] == 0.0
    assert state[sm.EWMA_AT + ewma_chart.W] == w
    assert hits and sum(count for count, _, _ in found) == len(hits)
    assert found[0][1] == hits[0] + params.baseline_n and found[-1][2] == hits[-1] + params.baseline_n
