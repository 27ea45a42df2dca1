"""Capability per shift as it took place: the trend of Cp/Cpk/Pp/Ppk a mentor reviews.

A machine's state keeps one accumulator per characteristic, product and shift (a local day where the
plant has no shifts) in ``MachineState.capability_shifts``, bounded per series and per machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.calendar import WindowSpan
from models.machine_state import MachineState
from models.spc.capability import Capability, CapabilityStats

__all__ = [
    "CAPABILITY_SHIFTS_KEPT",
    "CAPABILITY_SHIFT_ROWS",
    "ShiftCapability",
    "capability_by_shift",
    "newest_capability_by_shift",
    "shift_capability",
]

# Shifts of capability history per characteristic and product: three weeks of one shift a day, a
# week of three (days where the plant has no shifts). Older shifts stay in the lifetime figures.
CAPABILITY_SHIFTS_KEPT = 21
# And per machine, whatever its characteristics and products (each ~120 bytes of state, written
# with every changed state): eight series' worth; the oldest shifts of any series go first.
CAPABILITY_SHIFT_ROWS = 8 * CAPABILITY_SHIFTS_KEPT


@dataclass(frozen=True, slots=True)
class ShiftCapability:
    """Capability of one characteristic (and product) over one shift as it took place."""

    characteristic: str
    product: str | None
    shift: str | None  # None: a local day (the plant has no shifts, or parts made outside every shift)
    start_ms: int
    capability: Capability


def capability_by_shift(state: MachineState, min_parts: int) -> list[ShiftCapability]:
    """Capability per shift as it took place (a local day without shifts), oldest first per
    characteristic and product: the trend a mentor reviews. No indices from fewer than ``min_parts``."""
    return [_shift_row(state, key, *fields, min_parts) for key, fields in _shift_keys(state)]


def newest_capability_by_shift(state: MachineState, min_parts: int) -> list[ShiftCapability]:
    """Per characteristic and product of :func:`capability_by_shift` (in the order their series first
    appear there), its newest shift with ``min_parts`` parts or more, else its newest shift (without
    indices): a new shift's first parts do not replace the last one that had enough. Only these
    rows' indices are computed (a scrape exports one shift per series, of ``CAPABILITY_SHIFTS_KEPT``)."""
    shown: dict[tuple[str, str | None], tuple[str, _ShiftKey]] = {}
    for key, fields in _shift_keys(state):
        series = (fields[0], fields[1])
        # A newer shift replaces the one shown if it has enough parts or that one has not.
        if (
            series not in shown
            or min_parts <= state.capability_shifts[key].n
            or (state.capability_shifts[shown[series][0]].n < min_parts)
        ):
            shown[series] = (key, fields)
    return [_shift_row(state, key, *fields, min_parts) for key, fields in shown.values()]


# A kept shift's characteristic, product, shift name and start (``MachineState.capability_shifts``).
_ShiftKey = tuple[str, str | None, str | None, int]


def _shift_keys(state: MachineState) -> list[tuple[str, _ShiftKey]]:
    """The kept shifts' keys, parsed, oldest first per characteristic and product."""
    parsed: list[tuple[str, _ShiftKey]] = []
    for key in state.capability_shifts:
        characteristic, product, start_ms, shift = key.split("|")
        fields = (
            characteristic,
            None if product == "-" else product,
            None if shift == "-" else shift,
            int(start_ms),
        )
        parsed.append((key, fields))
    parsed.sort(key=lambda item: (item[1][0], item[1][1] or "", item[1][3]))
    return parsed


def _shift_row(
    state: MachineState,
    key: str,
    characteristic: str,
    product: str | None,
    shift: str | None,
    start_ms: int,
    min_parts: int,
) -> ShiftCapability:
    capability = state.capability_shifts[key].indices(min_parts=min_parts)
    return ShiftCapability(characteristic, product, shift, start_ms, capability)


def shift_capability(state: MachineState, series: str, span: WindowSpan) -> CapabilityStats:
    """The accumulator of ``series`` ("characteristic|product") over ``span``; starting one drops the
    oldest beyond CAPABILITY_SHIFTS_KEPT, so a machine's state stays bounded however long it runs."""
    key = f"{series}|{span.start_ms}|{span.shift or '-'}"
    stats = state.capability_shifts.get(key)
    if stats is None:
        stats = state.capability_shifts[key] = CapabilityStats()
        prefix = f"{series}|"
        _drop_oldest(
            [k for k in state.capability_shifts if k.startswith(prefix)], state, CAPABILITY_SHIFTS_KEPT
        )
        _drop_oldest(list(state.capability_shifts), state, CAPABILITY_SHIFT_ROWS)
    return stats


def _drop_oldest(keys: list[str], state: MachineState, keep: int) -> None:
    if len(keys) > keep:
        keys.sort(key=lambda k: int(k.rsplit("|", 2)[1]))  # "characteristic|product|start_ms|shift"
        for old in keys[: len(keys) - keep]:
            del state.capability_shifts[old]
