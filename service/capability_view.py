"""Cp, Cpk, Pp and Ppk of a machine as JSON rows, for ``analyze`` and the web API.

One row per characteristic, product and shift (``product``/``shift`` null where the telemetry gave
none or the plant has no shifts). Indices that cannot be computed (one-sided or missing spec limits,
fewer than two readings, zero spread) are null, never NaN or Infinity, so the JSON stays valid.
"""

from __future__ import annotations

import math
from typing import Any

from models.machine import MachineEngine, MachineState

__all__ = ["capability_rows"]


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def capability_rows(engine: MachineEngine, state: MachineState) -> list[dict[str, Any]]:
    rows = []
    for key, cap in sorted(engine.capability(state).items()):
        characteristic, product, shift = [*key.split("|"), "-", "-"][:3]
        rows.append(
            {
                "characteristic": characteristic,
                "product": None if product == "-" else product,
                "shift": None if shift == "-" else shift,
                "n": cap.n,
                "mean": _number(cap.mean),
                "sigma_within": _number(cap.sigma_within),
                "sigma_overall": _number(cap.sigma_overall),
                "lsl": _number(cap.lsl),
                "usl": _number(cap.usl),
                "cp": _number(cap.cp),
                "cpk": _number(cap.cpk),
                "pp": _number(cap.pp),
                "ppk": _number(cap.ppk),
            }
        )
    return rows
