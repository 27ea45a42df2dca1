"""models.finite.all_finite, the non-finite screen every reading goes through, against numpy."""

from __future__ import annotations

import numpy as np

from models.finite import all_finite


def test_finite_check_equals_numpy_on_every_kind_of_float() -> None:
    # Random bit patterns: NaNs of every payload, infinities, subnormals, zeros of both signs.
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**64, size=20_000, dtype=np.uint64)
    exponent = np.uint64(0x7FF0000000000000)
    bits[::3] |= exponent  # many non-finite ones
    bits[1::7] &= ~exponent  # and subnormals and zeros
    floats = bits.view(np.float64)
    for lo in range(0, floats.shape[0], 50):
        chunk = floats[lo : lo + 50]
        assert all_finite(chunk) == bool(np.isfinite(chunk).all())
        finite = chunk[np.isfinite(chunk)]
        assert all_finite(finite)
    extremes = np.array([np.finfo(np.float64).max, -np.finfo(np.float64).max, 5e-324, -0.0, 0.0])
    assert all_finite(extremes)
    for bad in (np.nan, np.inf, -np.inf):
        for at in (0, 2, 4):
            row = extremes.copy()
            row[at] = bad
            assert not all_finite(row)
