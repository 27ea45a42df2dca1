"""Cp, Cpk, Pp and Ppk of a machine as JSON rows, for ``analyze`` and the web API.

:func:`capability_rows`: one row per characteristic, product and shift name, over the machine's
whole life (``product``/``shift`` null where the telemetry gave none or the plant has no shifts).
:func:`capability_by_shift_rows`: one row per characteristic, product and shift as it took place
(``shift_start`` in the site's local time; a local day where the plant has no shifts, or for parts
made outside every shift), the newest ``CAPABILITY_SHIFTS_KEPT``, oldest first: the trend.
Indices that cannot be computed (one-sided or missing spec limits, fewer than two readings, zero
spread) are null, never NaN or Infinity, so the JSON stays valid.
"""

from __future__ import annotations

import math
from typing import Any

from models.capability_history import capability_by_shift
from models.machine import MachineEngine
from models.machine_state import MachineState
from models.spc.capability import Capability

__all__ = ["capability_by_shift_rows", "capability_rows"]


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _indices(cap: Capability) -> dict[str, Any]:
    return {
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


def capability_rows(engine: MachineEngine, state: MachineState) -> list[dict[str, Any]]:
    rows = []
    for key, cap in sorted(engine.capability(state).items()):
        characteristic, product, shift = [*key.split("|"), "-", "-"][:3]
        rows.append(
            {
                "characteristic": characteristic,
                "product": None if product == "-" else product,
                "shift": None if shift == "-" else shift,
                **_indices(cap),
            }
        )
    return rows


def capability_by_shift_rows(engine: MachineEngine, state: MachineState) -> list[dict[str, Any]]:
    calendar = engine.calendar_for(state)
    return [
        {
            "characteristic": row.characteristic,
            "product": row.product,
            "shift": row.shift,
            "shift_start": calendar.local_isoformat(row.start_ms),
            **_indices(row.capability),
        }
        for row in capability_by_shift(state, engine.plant.monitoring.capability_min_parts)
    ]
