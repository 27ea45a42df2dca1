"""Cycle time is judged as the ratio to the product's ideal cycle, and alerts only past a speed-loss gate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from models.machine import MachineEngine
from models.machine_state import MachineState
from models.plant import MachineSpec, PlantConfig

T0 = 1_790_000_000_000


@dataclass(frozen=True)
class Change:
    """An alert change as it was when it happened (the engine updates an open alert in place)."""

    status: str
    id: str
    started_ms: int
    evidence: dict[str, Any]
    message: str


def _plant(machine: dict[str, object], **cycle_time: object) -> PlantConfig:
    """A one-machine plant; ``cycle_time``: fields that differ from the cycle-time defaults."""
    return PlantConfig.model_validate(
        {
            "timezone": "UTC",
            "machines": [{"tenant": "acme", "site": "p1", "line": "L1", "id": "M01", **machine}],
            "monitoring": {"overrides": {"cycle_time_s": cycle_time}} if cycle_time else {},
        }
    )


def _feed(
    engine: MachineEngine,
    spec: MachineSpec,
    state: MachineState,
    cycles: Sequence[tuple[float, str | None]],
    start_ms: int,
) -> tuple[list[Change], int]:
    """Cycles back to back (seconds, product); the alert changes and the time after the last."""
    changes: list[Change] = []
    now = start_ms
    for seconds, product in cycles:
        now += round(seconds * 1000)
        for c in engine.on_cycle(state, spec, now, seconds, product).alerts:
            changes.append(
                # An update (the open alert published again) is not an alert opened.
                Change(
                    "update" if c.update else c.status,
                    c.alert.id,
                    c.alert.started_ms,
                    dict(c.alert.evidence),
                    c.alert.message,
                )
            )
    return changes, now


def _jitter(rng: np.random.Generator, ideal: float, factor: float, n: int) -> list[float]:
    return [float(s) for s in ideal * factor * rng.lognormal(0.01, 0.03, n)]


def _opened(changes: Sequence[Change]) -> list[Change]:
    return [c for c in changes if c.status == "open" and c.evidence["series"] == "cycle_time"]


@pytest.fixture
def multi() -> tuple[MachineEngine, MachineSpec, MachineState]:
    plant = _plant({"ideal_cycle_s": 40.0, "products": {"A": 38.0, "B": 55.0}})
    engine = MachineEngine(plant)
    spec = plant.machines[0]
    state = engine.new_state(spec)
    engine.on_state(state, spec, T0, "running", None)
    return engine, spec, state


def test_product_changes_and_designed_slow_runs_open_no_alert(
    multi: tuple[MachineEngine, MachineSpec, MachineState],
) -> None:
    engine, spec, state = multi
    rng = np.random.default_rng(3)
    cycles: list[tuple[float, str | None]] = []
    for lot in range(8):
        product, ideal = ("A", 38.0) if lot % 2 == 0 else ("B", 55.0)
        factor = 1.35 if lot in (3, 6) else 1.0  # two lots at a designed reduced speed
        cycles += [(s, product) for s in _jitter(rng, ideal, factor, 150)]
    changes, _ = _feed(engine, spec, state, cycles, T0)
    # In seconds, B is 45 % slower than A and every lot change is a 13-sigma step; as a ratio
    # to each product's ideal it is none, and a 1.35x run is below the 45 % gate.
    assert _opened(changes) == []
    assert "cycle_time:cycle_time_s" in state.monitors


def test_sustained_speed_loss_past_the_gate_opens_one_alert_that_resolves(
    multi: tuple[MachineEngine, MachineSpec, MachineState],
) -> None:
    engine, spec, state = multi
    rng = np.random.default_rng(4)
    normal = [(s, "B") for s in _jitter(rng, 55.0, 1.0, 150)]
    slow = [(s, "B") for s in _jitter(rng, 55.0, 1.6, 60)]
    back = [(s, "B") for s in _jitter(rng, 55.0, 1.0, 60)]
    changes, _ = _feed(engine, spec, state, normal + slow + back, T0)
    opened = _opened(changes)
    assert len(opened) == 1
    evidence = opened[0].evidence
    assert evidence["reference"] == 1.0 and evidence["level"] >= 1.45
    assert evidence["relative_shift"] >= 0.45
    assert opened[0].message.startswith("cycle_time_s: cycles at 1.")
    assert "x the ideal" in opened[0].message
    # Opened within the slow stretch, a few cycles after it began.
    slow_start_ms = T0 + round(sum(s for s, _ in normal) * 1000)
    assert slow_start_ms < opened[0].started_ms < slow_start_ms + 20 * 55 * 1000 * 1.6
    resolved = [c for c in changes if c.status == "resolved" and c.id == opened[0].id]
    assert resolved, "the alert resolves once cycles are back near the ideal"
    assert "drift/cycle_time_s" not in state.alerts


def test_one_jammed_cycle_moves_the_level_too_little_to_alert(
    multi: tuple[MachineEngine, MachineSpec, MachineState],
) -> None:
    engine, spec, state = multi
    rng = np.random.default_rng(5)
    before = [(s, "A") for s in _jitter(rng, 38.0, 1.0, 150)]
    after = [(s, "A") for s in _jitter(rng, 38.0, 1.0, 50)]
    changes, _ = _feed(engine, spec, state, [*before, (38.0 * 12, "A"), *after], T0)
    assert _opened(changes) == []
    # Without the cap the same jam is judged at face value and does open one.
    plant = _plant({"ideal_cycle_s": 40.0, "products": {"A": 38.0, "B": 55.0}}, max_ratio=100.0)
    uncapped = MachineEngine(plant)
    fresh = uncapped.new_state(plant.machines[0])
    uncapped.on_state(fresh, plant.machines[0], T0, "running", None)
    changes, _ = _feed(uncapped, plant.machines[0], fresh, [*before, (38.0 * 12, "A"), *after], T0)
    assert len(_opened(changes)) == 1


def test_product_without_ideal_is_not_judged_and_machine_without_any_is_judged_in_seconds() -> None:
    plant = _plant({"products": {"A": 38.0}})
    engine = MachineEngine(plant)
    spec = plant.machines[0]
    state = engine.new_state(spec)
    engine.on_state(state, spec, T0, "running", None)
    _feed(engine, spec, state, [(90.0, "unknown")] * 5, T0)
    assert "cycle_time:cycle_time_s" not in state.monitors  # no ideal: cannot be put on the ratio scale

    plant = _plant({})
    engine = MachineEngine(plant)
    spec = plant.machines[0]
    state = engine.new_state(spec)
    engine.on_state(state, spec, T0, "running", None)
    rng = np.random.default_rng(6)
    cycles = [(s, None) for s in _jitter(rng, 20.0, 1.0, 150)]
    cycles += [(s, None) for s in _jitter(rng, 20.0, 1.25, 60)]  # +25 %: below the gate
    cycles += [(s, None) for s in _jitter(rng, 20.0, 1.7, 60)]  # +70 %: past it
    changes, _ = _feed(engine, spec, state, cycles, T0)
    opened = _opened(changes)
    assert len(opened) == 1
    evidence = opened[0].evidence
    # Judged in seconds against the baseline mean.
    assert evidence["reference"] == pytest.approx(20.0 * 1.0105, rel=0.02)
    assert evidence["level"] > 1.45 * evidence["reference"]


def test_gate_off_restores_plain_sigma_detection() -> None:
    plant = _plant({"ideal_cycle_s": 20.0}, min_shift=0.0)
    engine = MachineEngine(plant)
    spec = plant.machines[0]
    state = engine.new_state(spec)
    engine.on_state(state, spec, T0, "running", None)
    rng = np.random.default_rng(7)
    cycles = [(s, None) for s in _jitter(rng, 20.0, 1.0, 150)]
    cycles += [(s, None) for s in _jitter(rng, 20.0, 1.25, 60)]
    changes, _ = _feed(engine, spec, state, cycles, T0)
    opened = _opened(changes)
    assert len(opened) == 1 and "level" not in opened[0].evidence


def test_a_cycle_monitor_stored_in_seconds_starts_a_new_baseline_on_the_ratio_scale() -> None:
    """A state written before cycles were judged as ratios must not compare ratios with seconds."""
    seconds_plant = _plant({"ideal_cycle_s": 20.0}, relative_to_ideal=False)
    old_engine = MachineEngine(seconds_plant)
    spec = seconds_plant.machines[0]
    state = old_engine.new_state(spec)
    old_engine.on_state(state, spec, T0, "running", None)
    rng = np.random.default_rng(8)
    _, now = _feed(old_engine, spec, state, [(s, None) for s in _jitter(rng, 20.0, 1.0, 120)], T0)
    key = "cycle_time:cycle_time_s"
    assert state.monitors[key][2] > 19.0  # BASE_MEAN, in seconds

    engine = MachineEngine(_plant({"ideal_cycle_s": 20.0}))
    changes, _ = _feed(engine, spec, state, [(s, None) for s in _jitter(rng, 20.0, 1.0, 150)], now)
    assert _opened(changes) == []  # no "shift" from 20 s to a ratio of 1
    base = state.monitors[key]
    assert 0.9 < base[2] < 1.1 and base[1] == 100  # a new baseline of 100 ratios


def test_a_machine_of_its_own_gate_alerts_where_its_neighbour_with_the_plant_gate_does_not() -> None:
    """``monitoring.machines`` tunes one machine over the plant-wide overrides."""
    plant = PlantConfig.model_validate(
        {
            "timezone": "UTC",
            "machines": [
                {"tenant": "acme", "site": "p1", "line": "L1", "id": machine, "ideal_cycle_s": 20.0}
                for machine in ("M01", "M02")
            ],
            "monitoring": {
                "overrides": {"cycle_time_s": {"max_ratio": 3.0}},
                "machines": {"M02": {"cycle_time_s": {"min_shift": 0.2}}},
            },
        }
    )
    engine = MachineEngine(plant)
    opened: dict[str, list[Change]] = {}
    for spec in plant.machines:
        state = engine.new_state(spec)
        engine.on_state(state, spec, T0, "running", None)
        rng = np.random.default_rng(9)  # the same cycles on both machines
        cycles = [(s, None) for s in _jitter(rng, 20.0, 1.0, 150)]
        cycles += [(s, None) for s in _jitter(rng, 20.0, 1.3, 80)]  # +30 %: between the gates
        changes, _ = _feed(engine, spec, state, cycles, T0)
        opened[spec.id] = _opened(changes)
    assert opened["M01"] == []
    assert len(opened["M02"]) == 1 and opened["M02"][0].evidence["relative_shift"] >= 0.2
    m02 = plant.monitoring.settings_for("cycle_time", "cycle_time_s", "M02")
    assert (m02.min_shift, m02.max_ratio) == (0.2, 3.0)  # the plant-wide override still applies
    assert plant.monitoring.settings_for("cycle_time", "cycle_time_s", "M01").min_shift == 0.45


def test_per_machine_settings_name_an_unknown_machine_or_field() -> None:
    base: dict[str, Any] = {
        "timezone": "UTC",
        "machines": [{"tenant": "acme", "site": "p1", "line": "L1", "id": "M01"}],
    }
    unknown = r"monitoring.machines names machines the plant does not have: \[.M9.\]"
    with pytest.raises(ValueError, match=unknown):
        PlantConfig.model_validate({**base, "monitoring": {"machines": {"M9": {"cycle_time_s": {}}}}})
    with pytest.raises(ValueError, match="min_shift"):
        PlantConfig.model_validate(
            {**base, "monitoring": {"machines": {"M01": {"cycle_time_s": {"min_shift": -1}}}}}
        )
