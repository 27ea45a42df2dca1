"""End to end on the simulator: an injected sensor_drift raises a drift alert naming its signal."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.drift_quality import START_MS, _simulate
from service.simulator import FaultKind, load_demo_plant
from service.simulator.faults import _resolve

HOURS = 8


@pytest.fixture(scope="module")
def normal() -> list[dict[str, Any]]:
    return _simulate(seed=5, days=HOURS / 24, faults=[])


def test_sensor_drift_fault_raises_a_drift_alert_naming_the_signal() -> None:
    plant = load_demo_plant()
    machine = plant.machines[0]
    start = START_MS + 4 * 3_600_000
    fault = _resolve(FaultKind.SENSOR_DRIFT, machine, "vibration_rms", start, start + 90 * 60_000)
    alerts = _simulate(seed=5, days=HOURS / 24, faults=[fault])
    hits = [
        a
        for a in alerts
        if a["status"] == "open"
        and a["kind"] == "drift"
        and a["machine"] == machine.id
        and a["evidence"]["signal"] == "vibration_rms"
        and a["evidence"]["last_ts_ms"] >= start
    ]
    assert hits, "the injected drift was not detected"
    assert "vibration_rms" in hits[0]["message"]
    assert hits[0]["evidence"]["last_ts_ms"] < fault.end_ms


def test_normal_operation_raises_few_drift_alerts_on_lag_free_signals(normal: list[dict[str, Any]]) -> None:
    false = [
        a
        for a in normal
        if a["status"] == "open"
        and a["kind"] == "drift"
        and a["evidence"]["signal"] in ("vibration_rms", "current")
    ]
    assert len(false) <= 2
