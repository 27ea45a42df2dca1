"""The array types the kernels take, and the input check of their public wrappers (numba would
compile odd specialisations for other dtypes or layouts)."""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["BoolArray", "FloatArray", "IntArray", "as_values"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_F8: Final = np.dtype(np.float64)


def as_values(values: object, name: str = "values") -> FloatArray:
    """A 1-D C-contiguous float64 array of finite values, or ValueError."""
    if not isinstance(values, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(values).__name__}")
    if values.dtype != _F8 or values.ndim != 1:
        raise ValueError(f"{name}: expected 1-D float64, got {values.dtype} {values.shape}")
    if not values.flags.c_contiguous:
        raise ValueError(f"{name}: must be C-contiguous")
    if values.size and not np.isfinite(values).all():
        raise ValueError(f"{name}: values must be finite")
    return values
