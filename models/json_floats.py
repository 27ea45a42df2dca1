"""Non-finite floats in a machine state's JSON form, kept exactly.

JSON has no infinity or NaN: orjson writes them as ``null``, which a state read back took for a
missing value (0.0, or no shift direction). Quality values near the float maximum overflow a
capability accumulator's sums to infinity, and a drift alert's ``shift_sigma`` with them, so a
restarted worker rebuilt a state that differed from the live one and published different records.

Numbers-only lists spell them ``"inf"``, ``"-inf"`` and ``"nan"``; inside free-form mappings (an
alert's evidence), where a string may be anything, a non-finite float becomes
``{"$float": "inf"}`` -- a key no evidence uses. The statistics' and monitors' state vectors, where
NaN means "not defined yet" and is common, write NaN as ``null`` (shorter) and the infinities as
strings (:func:`encode_number`). Finite values are left as they are.
"""

from __future__ import annotations

import math
from typing import Any, Final

__all__ = [
    "decode_float",
    "decode_number",
    "decode_tagged",
    "encode_float",
    "encode_number",
    "encode_tagged",
]

_TAG: Final = "$float"
_SPELLINGS: Final = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _spelling(value: float) -> str:
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def encode_float(value: float) -> float | str:
    """``value``, or its spelling when it is not finite."""
    return value if math.isfinite(value) else _spelling(value)


def decode_float(value: object) -> float:
    """Inverse of :func:`encode_float`; ValueError on anything else."""
    if isinstance(value, str) and value in _SPELLINGS:
        return _SPELLINGS[value]
    if isinstance(value, float | int) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"expected a number or 'inf', '-inf', 'nan', got {value!r}")


def encode_number(value: float) -> float | str | None:
    """``value``; NaN as ``None`` and an infinity as ``"inf"``/``"-inf"``."""
    if math.isfinite(value):
        return value
    return None if math.isnan(value) else _spelling(value)


def decode_number(value: object, where: str) -> float:
    """Inverse of :func:`encode_number`; ValueError naming ``where`` on anything else."""
    if value is None:
        return math.nan
    if isinstance(value, float | int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value in ("inf", "-inf"):
        return _SPELLINGS[value]
    raise ValueError(f"{where}: expected a number, null, 'inf' or '-inf', got {value!r}")


def encode_tagged(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, scalars) with every non-finite float tagged; ``value``
    itself when it has none (the common case: a scan, no copy, every state write pays it)."""
    return _tagged(value) if _has_nonfinite(value) else value


def _has_nonfinite(value: Any) -> bool:
    # Plain loops with the common types first: ~1 us for a drift alert's evidence (generators and
    # isinstance chains were ~4 us).
    items = value.values() if type(value) is dict else (value,)
    for item in items:
        kind = type(item)
        if kind is float:
            if item - item != 0.0:  # inf - inf and nan - nan are NaN; NaN != 0
                return True
        elif kind is str or kind is int or kind is bool or item is None:
            continue
        elif kind is list or kind is tuple:
            for inner in item:
                if _has_nonfinite(inner):
                    return True
        elif isinstance(item, float):  # numpy's float64 and other float subclasses
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict) and item is not value and _has_nonfinite(item):
            return True
    return False


def _tagged(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else {_TAG: _spelling(value)}
    if isinstance(value, dict):
        return {key: _tagged(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_tagged(item) for item in value]
    return value


def decode_tagged(value: Any) -> Any:
    """Inverse of :func:`encode_tagged` (tuples come back as lists, as from any JSON)."""
    if isinstance(value, dict):
        if len(value) == 1 and value.get(_TAG) in _SPELLINGS:
            return _SPELLINGS[value[_TAG]]
        return {key: decode_tagged(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_tagged(item) for item in value]
    return value
