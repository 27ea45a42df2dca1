"""Alert conditions a machine's engine raises, kept as one open alert per condition until resolved.

A condition is identified by (kind, subject); repeated detections of an open condition update it
(``count``, ``last_ms``) instead of creating a new alert, so managers get few alerts, not a flood.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AlertChange", "AlertState", "alert_id"]


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

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertState:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class AlertChange:
    """An alert opened or resolved; the stream turns it into an alert record."""

    alert: AlertState
    status: str  # "open" or "resolved"
    at_ms: int
