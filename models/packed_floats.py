"""float64 vectors in a JSON state as one base64 string: exact, and ~11 characters a float, not ~20.

Drift monitors' ADWIN buckets and expected-level models are long vectors stored with every changed
machine state; as JSON numbers they made the state (and its changelog writes) twice as large.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["PREFIX", "pack", "unpack"]

PREFIX: Final = "b64:"


def pack(values: npt.NDArray[np.float64]) -> str:
    """``values`` as little-endian float64, base64, behind :data:`PREFIX`."""
    return PREFIX + base64.b64encode(values.astype("<f8").tobytes()).decode("ascii")


def unpack(text: object, what: str) -> npt.NDArray[np.float64]:
    """Inverse of :func:`pack`, a new writable array; ValueError naming ``what`` on anything else."""
    if not isinstance(text, str) or not text.startswith(PREFIX):
        raise ValueError(f"{what}: missing (not a {PREFIX!r} string)")
    try:
        raw = base64.b64decode(text[len(PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"{what}: corrupt ({exc})") from None
    if len(raw) % 8:
        raise ValueError(f"{what}: corrupt (not whole float64s)")
    return np.frombuffer(raw, dtype="<f8").astype(np.float64)
