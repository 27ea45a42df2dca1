"""Nelson rules on hand-made series, I-MR limits and capability indices against hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.spc import CapabilityStats, imr_limits, nelson_rules


def fired_at(series: list[float], rule: int) -> list[int]:
    hits = nelson_rules(np.array(series, dtype=np.float64), center=0.0, sigma=1.0)
    return [int(i) for i in np.flatnonzero(hits[:, rule - 1])]


# A series that triggers none of the eight rules: small, mixed sides, mixed directions, no long runs.
QUIET = [0.5, -0.3, 1.2, 0.8, -1.1, -0.2, 0.4, 1.4, 1.1, -0.6, -1.3, 0.2, 0.9, -0.4, 1.5, 0.3, -0.9]


def test_a_quiet_series_triggers_no_rule() -> None:
    hits = nelson_rules(np.array(QUIET), center=0.0, sigma=1.0)
    assert not hits.any()


def test_rule1_one_point_beyond_3_sigma() -> None:
    assert fired_at([0.0, 3.2, 0.0, -3.01, 3.0], 1) == [1, 3]


def test_rule2_nine_on_one_side() -> None:
    assert fired_at([0.5] * 8 + [-0.5], 2) == []
    assert fired_at([0.5] * 10, 2) == [8, 9]


def test_rule3_six_steadily_increasing() -> None:
    assert fired_at([0.0, 0.1, 0.2, 0.3, 0.4], 3) == []
    assert fired_at([0.0, 0.1, 0.2, 0.3, 0.4, 0.5], 3) == [5]
    assert fired_at([0.5, 0.4, 0.3, 0.3, 0.2, 0.1, 0.0, -0.1, -0.2], 3) == [8]  # tie breaks the run


def test_rule4_fourteen_alternating() -> None:
    alternating = [0.5 if i % 2 else -0.5 for i in range(14)]
    assert fired_at(alternating[:13], 4) == []
    assert fired_at(alternating, 4) == [13]


def test_rule5_two_of_three_beyond_2_sigma() -> None:
    assert fired_at([2.5, 0.0, 2.1], 5) == [2]
    assert fired_at([2.5, 0.0, -2.1], 5) == []  # opposite sides
    assert fired_at([2.5, 2.2, 0.0], 5) == [1]  # not again at the inside point


def test_rule6_four_of_five_beyond_1_sigma() -> None:
    assert fired_at([1.5, 1.2, 0.0, 1.1, 1.9], 6) == [4]
    assert fired_at([1.5, 1.2, 0.0, 0.0, 1.9], 6) == []


def test_rule7_fifteen_within_1_sigma() -> None:
    hugging = [0.5 if i % 3 else -0.5 for i in range(15)]
    assert fired_at(hugging[:14], 7) == []
    assert fired_at(hugging, 7) == [14]


def test_rule8_eight_outside_1_sigma_both_sides() -> None:
    mixture = [1.5, -1.5, 1.2, -1.8, 1.4, -1.1, 1.6, -1.3]
    assert fired_at(mixture, 8) == [7]
    assert fired_at([1.5] * 8, 8) == []  # one side only: that is rule 2/6 territory, not a mixture


def test_imr_limits_by_hand() -> None:
    values = np.array([10.0, 12.0, 11.0, 13.0, 12.0])
    lim = imr_limits(values)
    mr_bar = (2 + 1 + 2 + 1) / 4
    assert lim.center == pytest.approx(11.6)
    assert lim.sigma == pytest.approx(mr_bar / 1.128)
    assert lim.ucl == pytest.approx(11.6 + 3 * mr_bar / 1.128)
    assert lim.mr_ucl == pytest.approx(3.267 * mr_bar)


def test_capability_by_hand() -> None:
    values = [10.0, 10.2, 9.9, 10.1, 9.8, 10.3]
    stats = CapabilityStats()
    for v in values:
        stats.update(v, lsl=9.4, usl=10.9)
    cap = stats.indices()
    mean = sum(values) / len(values)
    overall = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    within = np.mean(np.abs(np.diff(values))) / 1.128
    assert cap.mean == pytest.approx(mean)
    assert cap.cp == pytest.approx(1.5 / (6 * within))
    assert cap.cpk == pytest.approx(min(10.9 - mean, mean - 9.4) / (3 * within))
    assert cap.pp == pytest.approx(1.5 / (6 * overall))
    assert cap.ppk == pytest.approx(min(10.9 - mean, mean - 9.4) / (3 * overall))
    one_sided = stats.indices(lsl=None, usl=None)
    assert one_sided.cp == cap.cp  # falls back to the limits seen last
    restored = CapabilityStats.from_list(stats.to_list())
    assert restored.indices() == cap


def _by_hand(values: list[float], lsl: float | None, usl: float | None) -> tuple[int, float | None]:
    stats = CapabilityStats()
    for value in values:
        stats.update(value, lsl, usl)
    cap = stats.indices()
    return cap.n, cap.cpk


def test_a_part_with_other_limits_starts_the_capability_afresh() -> None:
    """A row mixing parts of two specs was judged against the newest limits only (Cp 0.925 for ten
    parts capable under their own 3.6 and ten under theirs 0.85), and a limit no longer sent stayed."""
    rng = np.random.default_rng(3)
    wide, narrow = (10 + rng.normal(0, 0.009, 10)).tolist(), (10 + rng.normal(0, 0.012, 10)).tolist()
    stats = CapabilityStats()
    for value in wide:
        stats.update(value, 9.9, 10.1)
    for value in narrow:
        stats.update(value, 9.97, 10.03)  # a drawing revision
    cap = stats.indices()
    assert (cap.n, cap.lsl, cap.usl) == (10, 9.97, 10.03)
    assert (cap.n, cap.cpk) == _by_hand(narrow, 9.97, 10.03)
    for value in narrow:
        stats.update(value, None, 10.03)  # the gateway stopped sending lsl
    cap = stats.indices()
    assert (cap.n, cap.lsl, cap.usl, cap.cp) == (10, None, 10.03, None)
    assert (cap.n, cap.cpk) == _by_hand(narrow, None, 10.03)
    # Parts without limits count against the row's; limits arriving first keep the earlier parts.
    stats.update(10.0)
    assert (stats.n, stats.lsl, stats.usl) == (11, None, 10.03)
    unlimited = CapabilityStats()
    unlimited.update(10.0)
    unlimited.update(10.01, 9.9, 10.1)
    assert (unlimited.n, unlimited.lsl, unlimited.usl) == (2, 9.9, 10.1)
