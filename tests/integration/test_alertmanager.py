"""A real Alertmanager with the shipped config: who is notified, what is inhibited, and acknowledgement.

Alerts are posted the way Prometheus posts them (its /api/v2/alerts); notifications arrive at a local
webhook in place of the placeholder receivers (tests/integration/alertmanager.py). Acknowledging is a
silence added with ``amtool``, exactly as docs/alerts.md tells a manager to.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.integration.alertmanager import AlertmanagerServer, alertmanager_running
from tests.integration.harness import wait_for
from tests.integration.observability import require_executable

WORKER = {"job": "linepulse", "instance": "w1:6066"}


def _machine(tenant: str, machine: str, line: str = "L1") -> dict[str, str]:
    return {"tenant": tenant, "site": "p1", "line": line, "machine": machine}


def _linepulse(tenant: str, machine: str, kind: str, severity: str, subject: str = "") -> dict[str, str]:
    """LinepulseMachineAlert's labels: linepulse's own, without job/instance (aggregated over
    workers); ``subject`` defaults to the machine (a stop's, an anomaly's)."""
    return {
        "alertname": "LinepulseMachineAlert",
        **_machine(tenant, machine),
        "kind": kind,
        "subject": subject or machine,
        "severity": severity,
    }


def _rule(alertname: str, severity: str, **labels: str) -> dict[str, str]:
    return {"alertname": alertname, "severity": severity, **WORKER, **labels}


def _post(alertmanager: AlertmanagerServer, *label_sets: dict[str, str], resolved: bool = False) -> None:
    now = datetime.now(UTC)
    alerts: list[dict[str, Any]] = []
    for labels in label_sets:
        alert: dict[str, Any] = {
            "labels": labels,
            "annotations": {"summary": f"{labels.get('machine', '-')} {labels['alertname']}"},
            "startsAt": (now - timedelta(minutes=10)).isoformat(),
        }
        if resolved:
            alert["endsAt"] = (now - timedelta(seconds=1)).isoformat()
        alerts.append(alert)
    alertmanager.post_alerts(alerts)


def _status(alertmanager: AlertmanagerServer) -> dict[tuple[str, ...], dict[str, Any]]:
    """Alert status by :func:`_key`."""
    return {_key(a["labels"]): a["status"] for a in alertmanager.alerts()}


def _key(labels: dict[str, str]) -> tuple[str, ...]:
    return tuple(labels.get(n, "") for n in ("alertname", "tenant", "machine", "kind", "subject", "severity"))


def _notified(alertmanager: AlertmanagerServer) -> dict[tuple[str, ...], set[tuple[str, str]]]:
    """Per alert: the (receiver, status) pairs it was notified with."""
    seen: dict[tuple[str, ...], set[tuple[str, str]]] = {}
    for receiver, payload in alertmanager.notifications():
        for alert in payload["alerts"]:
            seen.setdefault(_key(alert["labels"]), set()).add((receiver, alert["status"]))
    return seen


def test_inhibition_keeps_one_fact_from_being_notified_twice(tmp_path: Path) -> None:
    stopped = _linepulse("demo", "M01", "machine_stopped", "critical")
    # Consequences of the stop, on the same machine: muted.
    drift = _linepulse("demo", "M01", "drift", "warning", "vibration")
    silent = _rule("LinepulseMachineSilent", "warning", **_machine("demo", "M01"))
    # Same machine id in another tenant, and another machine of the same line: not muted.
    other_tenant = _linepulse("acme", "M01", "drift", "warning", "vibration")
    other_machine = _linepulse("demo", "M02", "drift", "warning", "vibration")
    # A machine stopped only idle (a warning) still mutes its silence and shift-OEE warnings.
    idle = _linepulse("demo", "M03", "machine_stopped", "warning")
    idle_silent = _rule("LinepulseMachineSilent", "warning", **_machine("demo", "M03"))
    idle_oee = _rule("LinepulseShiftOeeLow", "warning", **_machine("demo", "M03"), window="shift")
    # The closed shift's verdict (oee_low) mutes the in-shift warning of the same machine only.
    verdict = _linepulse("demo", "M04", "oee_low", "warning")
    in_shift = _rule("LinepulseShiftOeeLow", "warning", **_machine("demo", "M04"), window="shift")
    in_shift_elsewhere = _rule(
        "LinepulseShiftOeeLow", "warning", **_machine("demo", "M05", "L2"), window="shift"
    )
    # Parts out of spec on the stopped machine: not a consequence of the stop, so notified; parts
    # that keep failing (critical) go to the people on shift and mute nothing of their machine.
    bad_part = _linepulse("demo", "M01", "quality_out_of_spec", "warning", "bore")
    bad_parts = _linepulse("demo", "M02", "quality_out_of_spec", "critical", "bore")
    # The same alert while it was a warning (its series fires on for keep_firing_for): muted...
    bad_parts_before = _linepulse("demo", "M02", "quality_out_of_spec", "warning", "bore")
    # ...but not another characteristic's first bad part on that machine: news of its own.
    other_characteristic = _linepulse("demo", "M02", "quality_out_of_spec", "warning", "length")
    # A critical worker alert has no machine: it must not mute the other workers' warnings.
    worker_down = _rule("LinepulseWorkerDown", "critical")
    dead_letters = {**_rule("LinepulseDeadLettersRising", "warning"), "instance": "w2:6066"}
    muted = [drift, silent, idle_silent, idle_oee, in_shift, bad_parts_before]
    active = [
        stopped,
        other_tenant,
        other_machine,
        idle,
        verdict,
        in_shift_elsewhere,
        worker_down,
        dead_letters,
        bad_part,
        bad_parts,
        other_characteristic,
    ]

    with alertmanager_running(tmp_path) as alertmanager:
        # The inhibitor learns of alerts asynchronously: a muted alert whose group is flushed before
        # its source reached it is notified (a race the shipped 10 s / 30 s group_wait makes unlikely,
        # and Prometheus re-sends every alert each evaluation). Sources first, as in a real incident
        # where the stop precedes its consequences.
        _post(alertmanager, *active)
        wait_for(lambda: len(_status(alertmanager)) == len(active), 10, "the active alerts received")
        _post(alertmanager, *muted)
        wait_for(lambda: len(_status(alertmanager)) == len(muted) + len(active), 10, "every alert received")
        status = _status(alertmanager)
        for labels in muted:
            assert status[_key(labels)]["inhibitedBy"], (labels, status[_key(labels)])
            assert status[_key(labels)]["state"] == "suppressed"
        for labels in active:
            assert status[_key(labels)] == {"state": "active", "silencedBy": [], "inhibitedBy": []}, labels

        # Every active alert reaches its receiver; no muted one reaches anybody.
        def all_active_notified() -> bool:
            return all(_key(labels) in _notified(alertmanager) for labels in active)

        wait_for(all_active_notified, 20, "a notification for every active alert")
        notified = _notified(alertmanager)
        assert not [labels for labels in muted if _key(labels) in notified], notified
        assert notified[_key(stopped)] == {("demo-plant-on-shift", "firing")}
        assert notified[_key(other_machine)] == {("demo-plant-managers", "firing")}
        assert notified[_key(bad_part)] == {("demo-plant-managers", "firing")}
        assert notified[_key(bad_parts)] == {("demo-plant-on-shift", "firing")}
        assert notified[_key(other_characteristic)] == {("demo-plant-managers", "firing")}
        assert notified[_key(other_tenant)] == {("linepulse-operators", "firing")}  # acme has no route
        assert notified[_key(worker_down)] == {("linepulse-operators", "firing")}
        # One notification per machine: demo/M01's group carries only its stop, never acme/M01's drift.
        for receiver, payload in alertmanager.notifications():
            groups = {(a["labels"].get("tenant"), a["labels"].get("machine")) for a in payload["alerts"]}
            assert len(groups) == 1, (receiver, groups)


def test_a_silence_added_with_amtool_acknowledges_and_a_resolution_is_notified(tmp_path: Path) -> None:
    amtool = require_executable("amtool")
    acknowledged = _linepulse("demo", "M02", "drift", "warning", "vibration")
    other_signal = _linepulse("demo", "M02", "drift", "warning", "oil_temp")
    control = _linepulse("demo", "M03", "spc", "warning", "bore")
    with alertmanager_running(tmp_path) as alertmanager:
        # The manager acknowledges demo/M02's vibration drift: a silence on tenant, machine, kind
        # and subject, as the alert's `acknowledge` annotation writes it.
        result = subprocess.run(
            [
                amtool,
                f"--alertmanager.url={alertmanager.base_url}",
                "silence",
                "add",
                "tenant=demo",
                "machine=M02",
                "kind=drift",
                "subject=vibration",
                "--duration=1h",
                "--author=shift leader",
                "--comment=recalibrating the sensor",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        silence_id = result.stdout.strip()
        assert silence_id

        _post(alertmanager, acknowledged, other_signal, control)
        wait_for(lambda: _key(control) in _notified(alertmanager), 20, "the unsilenced alert's notification")
        wait_for(lambda: _key(other_signal) in _notified(alertmanager), 20, "the other signal's notification")
        status = _status(alertmanager)
        assert status[_key(acknowledged)]["silencedBy"] == [silence_id]
        assert status[_key(control)]["state"] == "active"
        assert status[_key(other_signal)]["state"] == "active"  # another drift: not acknowledged

        # linepulse resolves the SPC alert: the managers are told it is resolved.
        _post(alertmanager, control, resolved=True)
        wait_for(
            lambda: ("demo-plant-managers", "resolved") in _notified(alertmanager).get(_key(control), set()),
            20,
            "the resolution's notification",
        )
        # Several group intervals later the acknowledged alert has still notified nobody.
        assert _key(acknowledged) not in _notified(alertmanager)

        # Expiring the silence (the acknowledgement withdrawn) notifies the still-firing alert.
        expire = subprocess.run(
            [amtool, f"--alertmanager.url={alertmanager.base_url}", "silence", "expire", silence_id],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert expire.returncode == 0, expire.stdout + expire.stderr
        _post(alertmanager, acknowledged)  # Prometheus re-sends firing alerts every evaluation
        wait_for(
            lambda: (
                ("demo-plant-managers", "firing") in _notified(alertmanager).get(_key(acknowledged), set())
            ),
            20,
            "the notification once the silence expired",
        )
