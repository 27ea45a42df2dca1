"""Whether an array of floats holds no NaN or infinity, on the bits: shared by the kernels that
check every reading (frame decoding, signal statistics, the drift/SPC monitor)."""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from models.numba_config import kernel

__all__ = ["all_finite"]

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
