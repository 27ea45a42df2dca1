"""Opening, updating and resolving a machine's alerts: one alert per condition, published on change.

Every detector, rule and check of the engine (:mod:`models.machine`) raises its alerts here, so
"repeated detections update one alert" holds for all of them alike.
"""

from __future__ import annotations

from typing import Any

from models.accounting import EngineOutput
from models.alert_rules import AlertChange, AlertState, alert_id, signature
from models.machine_state import MachineState

__all__ = ["open_alert", "resolve_alert"]


def open_alert(
    state: MachineState,
    out: EngineOutput,
    key: str,
    *,
    kind: str,
    subject: str,
    severity: str,
    at_ms: int,
    message: str,
    evidence: dict[str, Any],
    detections: int = 1,
    refresh: bool = False,
) -> None:
    """Open the alert of ``key``, or update the open one.

    An open alert is published again (same id, status ``open``) only when its
    :func:`~models.alert_rules.signature` changes, with this call's severity, message and
    evidence; otherwise the detection is counted and, with ``refresh``, the stored message and
    evidence (an out-of-spec alert's count and latest value) are replaced without a record.
    """
    existing = state.alerts.get(key)
    if existing is not None:
        existing.count += detections
        existing.last_ms = at_ms
        existing.quiet = 0
        if signature(kind, severity, evidence) != signature(kind, existing.severity, existing.evidence):
            existing.severity, existing.message, existing.evidence = severity, message, evidence
            out.alerts.append(AlertChange(existing.snapshot(), "open", at_ms, update=True))
        elif refresh:
            existing.message, existing.evidence = message, evidence
        return
    alert = AlertState(
        id=alert_id(state.key, kind, subject, at_ms),
        kind=kind,
        subject=subject,
        severity=severity,
        started_ms=at_ms,
        last_ms=at_ms,
        message=message,
        evidence=evidence,
    )
    state.alerts[key] = alert
    out.alerts.append(AlertChange(alert.snapshot(), "open", at_ms))


def resolve_alert(
    state: MachineState,
    out: EngineOutput,
    key: str,
    at_ms: int,
    resolution: dict[str, Any],
    *,
    message: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> None:
    """Resolve the open alert of ``key`` (if any); ``message`` and ``evidence``: its final figures."""
    alert = state.alerts.pop(key, None)
    if alert is not None:
        if message is not None:
            alert.message = message
        if evidence is not None:
            alert.evidence = evidence
        out.alerts.append(AlertChange(alert.snapshot(), "resolved", at_ms, resolution))
