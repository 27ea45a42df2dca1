"""Alert conditions a machine's engine raises, kept as one open alert per condition until resolved.

A condition is identified by (kind, subject); repeated detections of an open condition update it
(``count``, ``last_ms``) instead of creating a new alert, so managers get few alerts, not a flood.

An open alert is published again (same id, status ``open``, a new ``updated_at``) only when what a
manager acts on changes: its :func:`signature` (severity; a stop's state and reason; a drift or SPC
alert's detectors and direction; an out-of-spec alert's side of the limits). Repeated detections
that change none of these are counted silently. The resolved record carries the alert's final
figures and, in ``resolution``, how it ended.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from models.json_floats import decode_tagged, encode_tagged

__all__ = ["AlertChange", "AlertState", "alert_id", "signature"]


def alert_id(machine_key: str, kind: str, subject: str, started_ms: int) -> str:
    """Stable across re-processing, so a re-delivered event re-emits the same id (idempotent sinks)."""
    digest = hashlib.sha256(f"{machine_key}|{kind}|{subject}|{started_ms}".encode()).hexdigest()
    return digest[:20]


@dataclass(slots=True)
class AlertState:
    id: str
    kind: str
    subject: str
    severity: str
    started_ms: int
    last_ms: int
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    count: int = 1
    # Readings that spoke for the condition being over since its last detection (an out-of-spec
    # alert's consecutive in-spec parts). Defaulted: states stored before it existed still load.
    quiet: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__slots__}
        # A shift of +inf sigma (readings near the float maximum) must come back as one, not as
        # JSON's null: the alert's direction, and so whether it is published again, depends on it.
        data["evidence"] = encode_tagged(self.evidence)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertState:
        return cls(**{**data, "evidence": decode_tagged(data.get("evidence", {}))})

    def snapshot(self) -> AlertState:
        """A copy that later silent updates (which replace or refresh ``evidence``) leave alone."""
        return replace(self, evidence=dict(self.evidence))


def _direction(evidence: dict[str, Any]) -> int:
    shift = evidence.get("shift_sigma")
    if not isinstance(shift, int | float):
        return 0
    return 1 if shift > 0 else -1 if shift < 0 else 0


def signature(kind: str, severity: str, evidence: dict[str, Any]) -> tuple[Any, ...]:
    """What a manager acts on: an open alert is published again only when this changes.

    Counts, durations and the latest value are not in it: they change with every detection and
    would turn one alert into a flood of updates.
    """
    if kind == "machine_stopped":
        return (severity, evidence.get("state"), evidence.get("reason"))
    if kind in ("drift", "spc"):
        return (severity, tuple(evidence.get("detectors", ())), _direction(evidence))
    if kind == "quality_out_of_spec":
        return (severity, evidence.get("side"))
    return (severity,)


@dataclass(frozen=True, slots=True)
class AlertChange:
    """An alert opened, updated (status ``open`` again) or resolved; the stream turns it into an
    alert record. ``alert`` is a snapshot: later updates of the stored alert do not change it."""

    alert: AlertState
    status: Literal["open", "resolved"]
    at_ms: int
    # How a resolved alert ended ("by" and its figures); None while open.
    resolution: dict[str, Any] | None = None
    # An open alert published again (its signature changed), not its first record.
    update: bool = False
