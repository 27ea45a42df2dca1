"""Allowed lateness: the log and snapshots that let a late event correct its windows exactly.

Events of the time model (states, counts, cycles, and the heartbeat of any other telemetry) are
logged in event-time order, and the accounting part of the machine state is snapshotted every
half allowed lateness. An event older than the newest one but within the allowed lateness is put
into its place in the log; the accounting is restored from the newest snapshot before it and the
log replayed, so the result is the same as if the events had arrived in order. Windows that the
replay closes with different totals are emitted again with the next revision number.

Each entry is ``[ts_ms, rank, payload-json]``: a total order that also fixes the order of events
with equal timestamps, so no permutation of events within the lateness changes the result.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["BEFORE_ALL", "LatenessLog", "Snapshot", "payload", "window_digest", "window_id"]

Entry = list[Any]  # [ts_ms, rank, payload json]
BEFORE_ALL: Entry = [-(2**62), 0, ""]


def payload(event: Entry) -> list[Any]:
    values: list[Any] = orjson.loads(event[2])
    return values


def window_id(kind: str, start_ms: int) -> str:
    return f"{kind}|{start_ms}"


def window_digest(window: dict[str, Any]) -> str:
    """A stable fingerprint of a window's totals: a revision is emitted only when they changed."""
    return hashlib.blake2b(orjson.dumps(window, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()


@dataclass(slots=True)
class Snapshot:
    position: Entry  # the accounting holds every logged event before this entry
    accounting: dict[str, Any]

    def to_list(self) -> list[Any]:
        return [self.position, self.accounting]


@dataclass(slots=True)
class LatenessLog:
    snapshots: list[Snapshot]  # oldest first; the oldest is at or before the lateness horizon
    events: list[Entry] = field(default_factory=list)  # sorted; none before the oldest snapshot
    emitted: dict[str, list[Any]] = field(default_factory=dict)  # window id -> [revision, digest, end]

    def insert(self, event: Entry) -> None:
        insort(self.events, event)

    def snapshot_before(self, event: Entry) -> int:
        """Index of the newest snapshot whose position is at or before ``event``."""
        index = bisect_right([snapshot.position for snapshot in self.snapshots], event) - 1
        return max(index, 0)

    def events_from(self, position: Entry) -> list[Entry]:
        return self.events[bisect_left(self.events, position) :]

    def forget_before(self, horizon_ms: int) -> None:
        """Drop what no event within the lateness can need: snapshots older than the newest one at
        before ``horizon_ms``, the events before it, and the revisions of windows ended by then."""
        keep = 0
        for index, snapshot in enumerate(self.snapshots):
            if snapshot.position[0] < horizon_ms:  # strictly: every event at the horizon is after it
                keep = index
        if keep:
            del self.snapshots[:keep]
        oldest = self.snapshots[0]
        del self.events[: bisect_left(self.events, oldest.position)]
        # A window that ended before the oldest snapshot's time is final: no replay reaches it.
        cursor = oldest.accounting.get("cursor_ms")
        if cursor is not None:
            # Except one still waiting for a stop decision there: a replay emits it again.
            waiting = {window_id(w["kind"], w["start_ms"]) for w in oldest.accounting["closing"]}
            for key in [key for key, (_, _, end_ms) in self.emitted.items() if end_ms <= cursor]:
                if key not in waiting:
                    del self.emitted[key]

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshots": [snapshot.to_list() for snapshot in self.snapshots],
            "events": self.events,
            "emitted": self.emitted,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatenessLog:
        return cls(
            snapshots=[Snapshot(position, accounting) for position, accounting in data["snapshots"]],
            events=[list(event) for event in data["events"]],
            emitted={key: list(value) for key, value in data["emitted"].items()},
        )
