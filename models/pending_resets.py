"""Baseline resets waiting for a machine's telemetry to reach their event time (``baseline reset --at``).

A reset asked for at event time ``at_ms`` is applied right after the first telemetry message of its
machine that brings the machine's newest event time (``last_seen_ms``) to ``at_ms`` or past it:
:func:`is_due` is that rule, and both the worker and ``analyze --baseline-reset`` apply resets
through it, so a replay on the worker repeats what ``analyze`` computes.

The resets wait in the machine's state, so they survive a restart or a rebalance with the rest of
it; they are kept in order of ``at_ms`` (equal times in the order they were asked for) and bounded.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Final

from models.monitoring_config import SeriesKind

__all__ = ["MAX_PENDING_RESETS", "PendingReset", "TooManyPendingResets", "is_due", "schedule", "take_due"]

# A machine's state carries its waiting resets in every changelog record: a handful is what an
# operator replaying a stream needs, and a bound keeps a runaway script from bloating the state.
MAX_PENDING_RESETS: Final = 16


@dataclass(frozen=True, slots=True)
class PendingReset:
    """One waiting reset: what to reset (``series``/``name``, all when None) and when (``at_ms``)."""

    at_ms: int
    series: SeriesKind | None = None
    name: str | None = None
    requested_by: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "at_ms": self.at_ms,
            "series": self.series,
            "name": self.name,
            "requested_by": self.requested_by,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PendingReset:
        return cls(
            at_ms=int(data["at_ms"]),
            series=data.get("series"),
            name=data.get("name"),
            requested_by=data.get("requested_by"),
            reason=data.get("reason"),
        )


class TooManyPendingResets(ValueError):
    """The machine already has :data:`MAX_PENDING_RESETS` resets waiting."""


def is_due(at_ms: int, last_seen_ms: int | None) -> bool:
    """Whether a reset at ``at_ms`` applies to a machine whose newest event time is ``last_seen_ms``."""
    return last_seen_ms is not None and at_ms <= last_seen_ms


def schedule(pending: list[PendingReset], reset: PendingReset) -> None:
    """Insert ``reset`` in order of time, after those of the same time (raises when full)."""
    if len(pending) >= MAX_PENDING_RESETS:
        raise TooManyPendingResets(
            f"the machine already has {len(pending)} baseline resets waiting for their time "
            f"(at most {MAX_PENDING_RESETS}); wait until the stream reaches the first of them"
        )
    pending.insert(bisect.bisect_right([p.at_ms for p in pending], reset.at_ms), reset)


def take_due(pending: list[PendingReset], last_seen_ms: int | None) -> list[PendingReset]:
    """Remove and return, in order, the resets that are due at ``last_seen_ms``."""
    count = 0
    while count < len(pending) and is_due(pending[count].at_ms, last_seen_ms):
        count += 1
    due = pending[:count]
    del pending[:count]
    return due
