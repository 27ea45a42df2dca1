"""The kinds of event the time model applies, numbered: at one event time they apply in this order.

The rank is part of each event's sort key (time, rank) in the lateness log, the batch order and
the time kernel, so a state change at 06:00:00 is applied before a count at the same millisecond.
"""

from __future__ import annotations

from typing import Final

__all__ = ["RANK_COUNT", "RANK_CYCLE", "RANK_HEARTBEAT", "RANK_STATE", "RANK_TICK", "RANK_TOO_LATE"]

RANK_STATE: Final = 0
RANK_COUNT: Final = 1
RANK_CYCLE: Final = 2
RANK_HEARTBEAT: Final = 3  # any other telemetry (readings, quality): the machine was seen
RANK_TOO_LATE: Final = 4  # beyond the allowed lateness: counted, not merged
RANK_TICK: Final = 5  # stream time passing (no telemetry of the machine's own)
