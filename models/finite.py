"""Whether an array of floats holds no NaN or infinity, on the bits: shared by the kernels that
check every reading (frame decoding, signal statistics, the drift/SPC monitor); and the smallest
normal float, below which the kernels' decaying recurrences flush to zero.

A recurrence ``y = keep * y + alpha * x`` fed zeros (or a factor ``keep**n``) decays to the smallest
subnormal and stays there: for ``keep > 0.5`` that value times ``keep`` rounds back to itself. On
Intel cores each multiplication by a subnormal takes a microcode assist (~100 cycles), so a state
stuck there made every later reading of the signal ~20x dearer, for good. Below
:data:`NORMAL_MIN` such a value is 0 for every purpose linepulse has."""

from __future__ import annotations

import sys
from typing import Final

import numpy as np
import numpy.typing as npt

from models.numba_config import inline_kernel, kernel

__all__ = ["FLUSH_EVERY", "NORMAL_MIN", "all_finite", "flushed"]

NORMAL_MIN: Final = sys.float_info.min  # 2.2250738585072014e-308
# Readings between two flushes of a hot loop's recurrence: a test per reading would sit on the
# loop's carried chain (~2.5 ns a reading in signal_stats); a subnormal lasts at most this long.
FLUSH_EVERY: Final = 64

_EXPONENT: Final = np.uint64(0x7FF0000000000000)
_EXPONENT_STEP: Final = np.uint64(0x0010000000000000)
_TOP_BIT: Final = np.uint64(0x8000000000000000)


@kernel
def all_finite(values: npt.NDArray[np.float64]) -> bool:
    """No NaN or infinity in ``values``: their exponent field is all ones.

    On the bits, with an integer OR that LLVM vectorises (~0.06 ns a reading): the exponent plus one
    step reaches the top bit only from all ones. A float sum of ``0 * x`` (NaN exactly for
    non-finite ``x``) is one serial chain of additions without fastmath, ~0.75 ns a reading, and a
    test per reading with an early exit keeps the loop scalar (~0.7-1.6 ns).
    """
    bits = values.view(np.uint64)
    acc = np.uint64(0)
    for i in range(bits.shape[0]):
        acc |= (bits[i] & _EXPONENT) + _EXPONENT_STEP
    return bool((acc & _TOP_BIT) == 0)


@inline_kernel
def flushed(value: float) -> float:
    """``value``, or 0 below the smallest normal float (see the module docstring): what every
    decaying recurrence of the kernels passes its carried value through."""
    return 0.0 if abs(value) < NORMAL_MIN else value
