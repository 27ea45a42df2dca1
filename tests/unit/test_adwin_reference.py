"""ADWIN against a plain one-reading-at-a-time reference, including the row cap river does not have.

The river cross-check (test_drift_river.py) fixes the semantics while the window fits; this
reference follows river's algorithm step by step in Python (lists of buckets per row, a merge
per full row, the cut scan every ``clock`` readings) and adds the cap's one rule: when the top
row fills, its oldest bucket is forgotten. The numba ADWIN works in blocks between scans, with
a screen before the exact cut test; it must give the same detections and the same window
statistics, bit for bit, whatever the batch split.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.drift import ADWIN


class _ReferenceADWIN:
    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
        max_rows: int = 40,
    ) -> None:
        self.delta, self.clock, self.cap = delta, clock, max_buckets + 1
        self.min_len, self.grace, self.max_rows = float(min_window_length), float(grace_period), max_rows
        self.detected = False
        self._reset()

    def _reset(self) -> None:
        self.rows: list[list[tuple[float, float]]] = [[]]  # per row, oldest bucket first
        self.width = self.total = self.variance = 0.0
        self.tick = 0

    def _delete_oldest(self) -> None:
        top = len(self.rows) - 1
        n = float(2**top)
        u, v = self.rows[top].pop(0)
        mu = u / n
        self.width -= n
        self.total -= u
        mu_window = self.total / self.width
        self.variance -= v + n * self.width * (mu - mu_window) * (mu - mu_window) / (n + self.width)
        if not self.rows[top] and top > 0:
            self.rows.pop()

    def _cut(self, n0: float, n1: float, delta_mean: float) -> bool:
        delta_prime = math.log(2 * math.log(self.width) / self.delta)
        m_recip = 1.0 / (n0 - self.min_len + 1) + 1.0 / (n1 - self.min_len + 1)
        epsilon = math.sqrt(2 * m_recip * (self.variance / self.width) * delta_prime) + (
            2.0 / 3.0 * delta_prime * m_recip
        )
        return abs(delta_mean) > epsilon

    def update(self, x: float) -> bool:
        if self.detected:
            self._reset()
        self.rows[0].append((x, 0.0))
        self.width += 1
        if self.width > 1:
            d = x - self.total / (self.width - 1)
            self.variance += (self.width - 1) * d * d / self.width
        else:
            self.variance += 0.0
        self.total += x
        row = 0
        while len(self.rows[row]) == self.cap:
            if row + 1 >= self.max_rows:
                self._delete_oldest()  # the cap: the top row is full, forget its oldest bucket
                break
            (t1, v1), (t2, v2) = self.rows[row][0], self.rows[row][1]
            n1 = n2 = float(2**row)
            mu1, mu2 = t1 / n1, t2 / n2
            merged = (t1 + t2, v1 + v2 + n1 * n2 * (mu1 - mu2) * (mu1 - mu2) / (n1 + n2))
            del self.rows[row][:2]
            if row + 1 == len(self.rows):
                self.rows.append([])
            self.rows[row + 1].append(merged)
            row += 1
        self.tick += 1
        self.detected = False
        if self.tick % self.clock == 0 and self.width > self.grace:
            again = True
            while again:
                again = False
                n0, n1, u0, u1 = 0.0, self.width, 0.0, self.total
                buckets = [
                    (float(2**r), t) for r in range(len(self.rows) - 1, -1, -1) for t, _ in self.rows[r]
                ]
                for index, (size, t) in enumerate(buckets):
                    n0, n1, u0, u1 = n0 + size, n1 - size, u0 + t, u1 - t
                    if index == len(buckets) - 1 and self.rows[0]:
                        break  # no cut after the newest bucket
                    if n1 >= self.min_len and n0 >= self.min_len and self._cut(n0, n1, u0 / n0 - u1 / n1):
                        self.detected = again = True
                        if self.width > 0:
                            self._delete_oldest()
                            break
        return self.detected


def _series(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, n)
    x[n // 3 : n // 2] += rng.uniform(1.5, 3.0)  # a step of random size
    x[2 * n // 3 :] += np.linspace(0.0, rng.uniform(0.5, 3.0), n - 2 * n // 3)  # a ramp
    return x


CASES = [
    ({}, 8),
    ({}, 4),
    ({"delta": 0.05, "clock": 1}, 5),
    ({"delta": 0.2, "clock": 4, "max_buckets": 2, "min_window_length": 1, "grace_period": 0}, 6),
    ({"max_buckets": 3, "min_window_length": 10, "grace_period": 50, "clock": 7}, 5),
    ({"delta": 0.5, "clock": 16, "max_buckets": 7}, 4),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("params", "max_rows"), CASES)
def test_adwin_equals_the_reference_with_a_row_cap(
    seed: int, params: dict[str, float], max_rows: int
) -> None:
    values = _series(seed, 6000)
    reference = _ReferenceADWIN(**params, max_rows=max_rows)  # type: ignore[arg-type]
    expected = [i for i, x in enumerate(values.tolist()) if reference.update(x)]
    assert expected, "the series must make ADWIN detect, or the test proves little"
    rng = np.random.default_rng(seed + 100)
    cuts = np.sort(rng.choice(np.arange(1, values.shape[0]), size=40, replace=False))
    for splits in ([], cuts.tolist()):
        adwin = ADWIN(**params, max_rows=max_rows)  # type: ignore[arg-type]
        found: list[int] = []
        for lo, hi in zip([0, *splits], [*splits, values.shape[0]], strict=True):
            found += [lo + int(i) for i in adwin.detect(values[lo:hi])]
        assert found == expected
        # The window's statistics too, bit for bit (they decide every later cut).
        assert (adwin.width, adwin.estimation) == (
            int(reference.width),
            0.0 if reference.width == 0 else reference.total / reference.width,
        )
        assert adwin.state[2] == reference.variance
