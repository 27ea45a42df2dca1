"""Alert records a manager can trust: open alerts are published again when what a manager acts on
changes (and only then), every alert is resolved with its final figures, and repeated detections
of one condition stay one alert."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from models.alert_rules import AlertChange, AlertState, signature
from models.machine import MachineEngine
from models.machine_state import MachineState
from models.plant import MachineSpec, PlantConfig
from models.spc.rules import RULE_PATTERNS
from service.analyze import analyze_file
from service.settings import load_settings


def at(hh: int, mm: int = 0, day: int = 25) -> int:
    return int(datetime(2026, 11, day, hh, mm, tzinfo=UTC).timestamp() * 1000)


@dataclass(frozen=True)
class Seen:
    """An alert change as it was published (copied when it happened)."""

    status: str
    update: bool
    id: str
    kind: str
    severity: str
    at_ms: int
    message: str
    evidence: dict[str, Any]
    resolution: dict[str, Any] | None


def seen(changes: list[AlertChange]) -> list[Seen]:
    return [
        Seen(
            c.status,
            c.update,
            c.alert.id,
            c.alert.kind,
            c.alert.severity,
            c.at_ms,
            c.alert.message,
            dict(c.alert.evidence),
            c.resolution,
        )
        for c in changes
    ]


def _plant(**alerts: object) -> PlantConfig:
    return PlantConfig.model_validate(
        {
            "timezone": "UTC",
            "shifts": [
                {"name": "day", "start": "06:00", "end": "14:00"},
                {"name": "swing", "start": "14:00", "end": "22:00"},
                {"name": "night", "start": "22:00", "end": "06:00"},
            ],
            "machines": [
                {
                    "tenant": "acme",
                    "site": "p1",
                    "line": "L1",
                    "id": "M01",
                    "name": "Press 1",
                    "ideal_cycle_s": 12.0,
                }
            ],
            "alerts": {"down_after_s": 300, **alerts},
            "state_timeout_s": 3600,
        }
    )


@pytest.fixture
def plant() -> PlantConfig:
    return _plant()


@pytest.fixture
def engine(plant: PlantConfig) -> MachineEngine:
    return MachineEngine(plant)


@pytest.fixture
def spec(plant: PlantConfig) -> MachineSpec:
    return plant.machines[0]


@pytest.fixture
def state(engine: MachineEngine, spec: MachineSpec) -> MachineState:
    return engine.new_state(spec)


# -- machine_stopped --------------------------------------------------------------------------


def _stop_sequence(
    engine: MachineEngine, spec: MachineSpec, state: MachineState, steps: list[tuple[int, str, str | None]]
) -> list[Seen]:
    """State events every minute from 9:00 (each step: the minute it starts, state, reason) to the last."""
    changes: list[AlertChange] = []
    current = steps[0]
    plan = {minute: (name, reason) for minute, name, reason in steps}
    for minute in range(0, steps[-1][0] + 1):
        name, reason = plan.get(minute, current[1:])
        current = (minute, name, reason)
        changes += engine.on_state(state, spec, at(9) + minute * 60_000, name, reason).alerts
    return seen(changes)


def test_a_stop_that_escalates_is_published_again_and_resolved_with_its_total(
    engine: MachineEngine, spec: MachineSpec, state: MachineState
) -> None:
    changes = _stop_sequence(
        engine,
        spec,
        state,
        [
            (0, "idle", "no_material"),
            (6, "down", "breakdown"),
            (20, "down", "electrical"),
            (41, "running", None),
        ],
    )
    assert [(c.status, c.update, c.severity, c.evidence["state"], c.evidence["reason"]) for c in changes] == [
        ("open", False, "warning", "idle", "no_material"),
        ("open", True, "critical", "down", "breakdown"),
        ("open", True, "critical", "down", "electrical"),
        ("resolved", False, "critical", "down", "electrical"),
    ]
    assert len({c.id for c in changes}) == 1, "one stop, one alert"
    assert [c.at_ms for c in changes] == [at(9), at(9, 6), at(9, 20), at(9, 41)]
    assert changes[0].message == "Press 1 idle (no_material) for 5 min"
    assert changes[1].message == "Press 1 now down (breakdown), stopped for 6 min"
    assert changes[1].evidence["stopped_s"] == 360.0
    # The resolved record carries the whole stop, not the figures of when it was raised.
    final = changes[-1]
    assert final.evidence["stopped_s"] == 41 * 60.0
    assert final.message == "Press 1 was stopped for 41 min (last down (electrical))"
    assert final.resolution == {"by": "state_change", "state": "running", "reason": None}


def test_a_stop_is_not_republished_while_nothing_changes_and_stays_critical_after_a_breakdown(
    engine: MachineEngine, spec: MachineSpec, state: MachineState
) -> None:
    changes = _stop_sequence(
        engine,
        spec,
        state,
        [(0, "down", "breakdown"), (30, "idle", "no_material"), (95, "running", None)],
    )
    assert [(c.status, c.update, c.severity) for c in changes] == [
        ("open", False, "critical"),
        ("open", True, "critical"),  # waiting for material after the repair: still the same stop
        ("resolved", False, "critical"),
    ]
    assert changes[-1].message == "Press 1 was stopped for 1 h 35 min (last idle (no_material))"


# -- oee_low ------------------------------------------------------------------------------------


def _run_shifts(
    engine: MachineEngine, spec: MachineSpec, state: MachineState, units_per_10_min: list[int]
) -> list[Seen]:
    """Running from 06:00, one count every 10 minutes; each shift (8 h) makes the given units."""
    changes: list[AlertChange] = list(engine.on_state(state, spec, at(6), "running", None).alerts)
    for shift, units in enumerate(units_per_10_min):
        for step in range(48):
            ts = at(6) + shift * 8 * 3_600_000 + (step + 1) * 600_000
            changes += engine.on_count(state, spec, ts, units, 0, None, None).alerts
    return [c for c in seen(changes) if c.kind == "oee_low"]


def test_each_low_shift_is_its_own_alert_resolved_when_the_next_shift_figure_arrives(
    spec: MachineSpec,
) -> None:
    plant = _plant(oee_below=0.5)
    engine = MachineEngine(plant)
    state = engine.new_state(spec)
    # 10 units of 12 s in 10 min: OEE 0.2; 50 units: 1.0. Day low, swing low, night good, day low.
    changes = _run_shifts(engine, spec, state, [10, 10, 50, 10, 50])
    assert [(c.status, c.evidence["shift"], c.at_ms) for c in changes] == [
        ("open", "day", at(14)),
        ("resolved", "day", at(22)),  # the swing shift's figure arrived (low too)
        ("open", "swing", at(22)),
        ("resolved", "swing", at(6, day=26)),  # the night's (good)
        ("open", "day", at(14, day=26)),
        ("resolved", "day", at(22, day=26)),
    ]
    assert len({c.id for c in changes}) == 3, "each shift its own alert"
    assert changes[0].message == "Press 1: OEE 20% in the day shift of 2026-11-25 (target 50%)"
    assert changes[0].evidence["date"] == "2026-11-25"
    assert changes[1].resolution is not None and changes[1].resolution["by"] == "next_shift"
    assert changes[1].resolution["shift"] == "swing" and changes[1].resolution["oee"] == pytest.approx(0.2)
    assert (
        changes[3].resolution is not None and changes[3].resolution["oee"] > 0.9
    )  # not low: no alert of its own
    assert "oee_low" not in state.alerts
    assert (changes[0].evidence["coverage"], changes[0].evidence["unknown_s"]) == (1.0, 0.0)


def test_a_plant_without_shifts_gets_its_verdict_on_each_production_day() -> None:
    """A 24/7 plant declares no shifts: no shift window ever closes, so its OEE was never judged.
    Its production day is: each day its own alert, resolved when the next day's figure arrives."""
    plant = PlantConfig.model_validate({**_plant(oee_below=0.5).model_dump(), "shifts": []})
    engine = MachineEngine(plant)
    spec = plant.machines[0]
    state = engine.new_state(spec)
    changes: list[AlertChange] = list(engine.on_state(state, spec, at(0), "running", None).alerts)
    # 10 units of 12 s in 10 min: OEE 0.2; 50 units: 1.0. Low, low, good, low.
    for day, units in enumerate([10, 10, 50, 10]):
        for step in range(144):
            ts = at(0) + day * 86_400_000 + (step + 1) * 600_000
            changes += engine.on_count(state, spec, ts, units, 0, None, None).alerts
    low = [c for c in seen(changes) if c.kind == "oee_low"]
    assert [(c.status, c.evidence["date"], c.at_ms) for c in low] == [
        ("open", "2026-11-25", at(0, day=26)),
        ("resolved", "2026-11-25", at(0, day=27)),  # the next day's figure arrived (low too)
        ("open", "2026-11-26", at(0, day=27)),
        ("resolved", "2026-11-26", at(0, day=28)),  # the next day's (good): no alert of its own
        ("open", "2026-11-28", at(0, day=29)),  # the last count, at midnight, closed the fourth day
    ]
    assert low[0].message == "Press 1: OEE 20% in the production day 2026-11-25 (target 50%)"
    assert (low[0].evidence["window"], low[0].evidence["shift"]) == ("day", None)
    assert low[0].evidence["oee"] == pytest.approx(0.2, abs=0.01)  # 143 counts: the 144th opens the next day
    assert low[1].resolution is not None and low[1].resolution["by"] == "next_day"
    assert low[1].resolution["date"] == "2026-11-26" and low[1].resolution["oee"] == pytest.approx(
        0.2, abs=0.01
    )
    assert len({c.id for c in low}) == 3
    assert state.alerts["oee_low"].evidence["date"] == "2026-11-28"


def test_a_shift_whose_planned_time_produced_nothing_is_the_worst_verdict_not_none(
    engine: MachineEngine, spec: MachineSpec
) -> None:
    """OEE is undefined (null) without a unit produced, so such a shift once got no verdict at all:
    a machine running empty, or with a failed counter, all shift. A shift without data is not
    judged: nothing is known of it."""
    engine = MachineEngine(_plant(oee_below=0.5))
    state = engine.new_state(spec)

    def sensors(until_ms: int, every_ms: int = 600_000) -> list[AlertChange]:
        """The machine's sensor readings every 10 minutes: data, so its time is known."""
        found = []
        for ts in range(at(6) + every_ms, until_ms + 1, every_ms):
            if (state.last_seen_ms or 0) < ts:
                series = [("vibration", np.array([ts], dtype=np.int64), np.array([1.0]))]
                found += engine.on_samples(state, spec, ts, series).alerts
        return found

    changes: list[AlertChange] = list(engine.on_state(state, spec, at(6), "running", None).alerts)
    changes += sensors(at(14) - 1)
    changes += engine.on_state(state, spec, at(14), "down", "E-STOP").alerts  # swing: down all shift
    changes += sensors(at(22) - 1)
    changes += engine.on_state(state, spec, at(22), "running", None).alerts
    for step in range(48):  # night: 50 units per 10 minutes, OEE 1.0
        changes += engine.on_count(state, spec, at(22) + (step + 1) * 600_000, 50, 0, None, None).alerts
    low = [c for c in seen(changes) if c.kind == "oee_low"]
    assert [(c.status, c.evidence["shift"], c.at_ms) for c in low] == [
        ("open", "day", at(14)),
        ("resolved", "day", at(22)),
        ("open", "swing", at(22)),
        ("resolved", "swing", at(6, day=26)),
    ]
    assert (
        low[0].message
        == "Press 1: nothing produced in the day shift of 2026-11-25 (OEE undefined; target 50%)"
    )
    assert (low[0].evidence["oee"], low[0].evidence["produced"], low[0].evidence["performance"]) == (
        None,
        0,
        0.0,
    )
    assert low[2].evidence["availability"] == 0.0
    assert low[1].resolution is not None and low[1].resolution["oee"] is None
    assert low[3].resolution is not None and low[3].resolution["oee"] > 0.9

    # Known until an hour before the day shift (state_timeout_s), then nothing for two shifts.
    silent = engine.new_state(spec)
    changes = list(engine.on_state(silent, spec, at(4), "idle", None).alerts)
    changes += engine.on_state(silent, spec, at(22, 30), "running", None).alerts
    # The night shift it was idle in is judged, saying on how much; the two without data are not.
    [(date, shift, coverage)] = [
        (c.evidence["date"], c.evidence["shift"], c.evidence["coverage"])
        for c in seen(changes)
        if c.kind == "oee_low"
    ]
    assert (date, shift, coverage) == ("2026-11-24", "night", pytest.approx(0.125))


def test_a_machine_that_makes_no_units_gets_no_verdict_on_its_empty_shifts() -> None:
    """A compressor: no ideal cycle time in the plant file and no count ever, only states and
    sensors. It got "nothing produced" every shift; once a count came, its empty shifts are judged."""
    before = _plant(oee_below=0.5)  # as the machine was judged before: a press's plant entry
    press = before.machines[0]
    compressor = press.model_copy(update={"ideal_cycle_s": None, "name": "Compressor"})
    engine = MachineEngine(before.model_copy(update={"machines": [compressor]}))
    state = engine.new_state(compressor)

    def running_shifts(start_ms: int, hours: int) -> list[AlertChange]:
        found = list(engine.on_state(state, compressor, start_ms, "running", None).alerts)
        for step in range(1, hours * 6 + 1):
            ts = start_ms + step * 600_000
            series = [("pressure", np.array([ts], dtype=np.int64), np.array([6.0]))]
            found += engine.on_samples(state, compressor, ts, series).alerts
        return found

    # One opened by a version that did not tell such machines apart is ended at the next shift, and
    # none opens after it.
    engine_before = MachineEngine(before)
    engine_before.on_state(state, press, at(4), "running", None)
    for ts in range(at(4, 10), at(14, 31), 600_000):
        series = [("pressure", np.array([ts], dtype=np.int64), np.array([6.0]))]
        engine_before.on_samples(state, press, ts, series)
    assert state.alerts["oee_low"].message.startswith("Press 1: nothing produced in the day shift")
    changes = running_shifts(at(14, 30), 40)
    assert [(c.status, c.resolution["by"]) for c in seen(changes) if c.kind == "oee_low"] == [
        ("resolved", "next_shift")
    ]
    assert "oee_low" not in state.alerts
    changes = list(engine.on_count(state, compressor, at(6, day=27) + 1, 1, 0, None, None).alerts)
    changes += running_shifts(at(6, day=27) + 1, 17)  # one unit in the day shift, none in the swing
    low = [(c.status, c.evidence["shift"]) for c in seen(changes) if c.kind == "oee_low"]
    assert ("open", "swing") in low, low


def test_a_low_shift_figure_on_part_of_the_shift_says_so(spec: MachineSpec) -> None:
    # The machine's data covers the first two hours of the day shift only (state_timeout_s 3600:
    # believed an hour after its last count); the figure rests on a quarter of the shift.
    engine = MachineEngine(_plant(oee_below=0.5))
    state = engine.new_state(spec)
    changes = list(engine.on_state(state, spec, at(6), "running", None).alerts)
    changes += engine.on_count(state, spec, at(7), 60, 0, None, None).alerts
    changes += engine.on_count(state, spec, at(15), 0, 0, None, None).alerts  # into the swing shift
    (opened,) = [c for c in seen(changes) if c.kind == "oee_low"]
    assert opened.evidence["coverage"] == pytest.approx(0.25)
    assert opened.evidence["unknown_s"] == pytest.approx(6 * 3600.0)
    assert opened.message.endswith("(target 50%; data for 25% of the shift)")


# -- quality_out_of_spec ------------------------------------------------------------------------


def _parts(
    engine: MachineEngine,
    spec: MachineSpec,
    state: MachineState,
    values: list[float],
    product: str | None = "P1",
) -> list[Seen]:
    changes: list[AlertChange] = []
    for i, value in enumerate(values):
        changes += engine.on_quality(
            state, spec, at(8) + i * 60_000, "len_mm", value, 9.8, 10.2, product
        ).alerts
    return [c for c in seen(changes) if c.kind == "quality_out_of_spec"]


def test_parts_that_keep_failing_are_one_alert_resolved_after_in_spec_parts(
    engine: MachineEngine, spec: MachineSpec, state: MachineState
) -> None:
    # Every third part fails, ten times (the pattern that raised ten alerts), then five good parts.
    values = [10.0, 10.0, 10.5] * 10 + [10.0] * 5
    changes = _parts(engine, spec, state, values)
    # Published again once, when the third bad part makes it critical (alerts.out_of_spec_critical_after).
    assert [(c.status, c.severity) for c in changes] == [
        ("open", "warning"),
        ("open", "critical"),
        ("resolved", "critical"),
    ]
    opened, escalated, resolved = changes
    assert opened.id == escalated.id == resolved.id and escalated.evidence["count"] == 3
    assert escalated.at_ms == at(8) + 8 * 60_000  # the third bad part
    assert opened.evidence == {
        "characteristic": "len_mm",
        "product": "P1",
        "value": 10.5,
        "lsl": 9.8,
        "usl": 10.2,
        "side": "above",
        "count": 1,
    }
    assert opened.message == "len_mm of P1 = 10.5 outside spec [9.8, 10.2]"
    # The resolved record has the final count; resolved at the fifth in-spec part after the last bad one.
    assert resolved.evidence["count"] == 10
    assert resolved.message == "len_mm of P1 = 10.5 outside spec [9.8, 10.2]; 10 parts out of spec"
    assert resolved.at_ms == at(8) + (len(values) - 1) * 60_000
    assert resolved.resolution == {"by": "in_spec_parts", "parts": 5, "value": 10.0}


def test_the_out_of_spec_message_shows_the_value_as_exactly_as_it_came(
    engine: MachineEngine, spec: MachineSpec, state: MachineState
) -> None:
    """Six significant digits printed a part 0.002 over 1250.05 as 1250.05: it read as in spec."""
    for characteristic, value, lsl, usl, shown in (
        ("bore", 1250.052, 1249.95, 1250.05, "bore = 1250.052 outside spec [1249.95, 1250.05]"),
        ("pin", 10.1000001, 9.9, 10.1, "pin = 10.1000001 outside spec [9.9, 10.1]"),
        ("gap", 0.1 + 0.2, None, 0.3, "gap = 0.30000000000000004 outside spec [-, 0.3]"),
    ):
        out = engine.on_quality(state, spec, at(8), characteristic, value, lsl, usl)
        assert [change.alert.message for change in out.alerts] == [shown]


def test_out_of_spec_turns_critical_after_the_configured_parts_and_never_back(spec: MachineSpec) -> None:
    for after, expected in (
        (1, [("open", "critical"), ("resolved", "critical")]),
        (2, [("open", "warning"), ("open", "critical"), ("resolved", "critical")]),
        (None, [("open", "warning"), ("resolved", "warning")]),
    ):
        engine = MachineEngine(_plant(out_of_spec_critical_after=after))
        state = engine.new_state(spec)
        # Bad, bad, then in-spec parts with bad ones between: critical stays until the alert resolves.
        values = [10.5, 10.5, 10.0, 10.6, 10.0, 10.0, 10.0, 10.0, 10.0]
        assert [(c.status, c.severity) for c in _parts(engine, spec, state, values)] == expected, after


def test_fewer_in_spec_parts_than_configured_leave_the_alert_open(spec: MachineSpec) -> None:
    for needed, expected in ((5, ["open"]), (4, ["open", "resolved"])):
        engine = MachineEngine(_plant(in_spec_to_resolve=needed))
        state = engine.new_state(spec)
        changes = _parts(engine, spec, state, [10.5, 10.0, 10.0, 10.0, 10.0])
        assert [c.status for c in changes] == expected


def test_out_of_spec_alerts_are_per_product_and_a_change_of_side_is_published(
    engine: MachineEngine, spec: MachineSpec, state: MachineState
) -> None:
    changes = _parts(engine, spec, state, [10.5, 10.6, 9.7], "P1")
    changes += _parts(engine, spec, state, [10.5], "P2")
    assert [(c.status, c.update, c.evidence["product"], c.evidence["side"]) for c in changes] == [
        ("open", False, "P1", "above"),
        ("open", True, "P1", "below"),  # the same part now fails the other limit: published
        ("open", False, "P2", "above"),
    ]
    assert changes[0].id == changes[1].id != changes[2].id
    assert changes[1].evidence["count"] == 3 and changes[1].message.startswith("len_mm of P1 = 9.7 ")


def test_spec_limits_from_the_plant_file_judge_parts_that_carry_none() -> None:
    plant = _plant().model_dump()
    plant["monitoring"] = {"overrides": {"len_mm": {"lsl": 9.9, "usl": 10.1}}}
    engine = MachineEngine(PlantConfig.model_validate(plant))
    spec = engine.plant.machines[0]
    state = engine.new_state(spec)
    changes: list[AlertChange] = []
    for i, value in enumerate([10.0, 10.3, 10.0]):
        changes += engine.on_quality(state, spec, at(8) + i * 60_000, "len_mm", value, None, None).alerts
    opened = [c for c in seen(changes) if c.kind == "quality_out_of_spec"]
    assert [(c.status, c.evidence["value"], c.evidence["lsl"], c.evidence["usl"]) for c in opened] == [
        ("open", 10.3, 9.9, 10.1)
    ]
    # A part's own limit wins over the plant file's: 10.3 under its usl 10.5 is the second in-spec part.
    engine.on_quality(state, spec, at(9), "len_mm", 10.3, None, 10.5)
    assert state.alerts["quality_out_of_spec/len_mm"].quiet == 2


# -- drift and SPC ------------------------------------------------------------------------------


def _quality_shift(engine: MachineEngine, spec: MachineSpec, state: MachineState) -> list[Seen]:
    rng = np.random.default_rng(2)
    changes: list[AlertChange] = []
    for i in range(90):
        value = 25.0 + rng.normal(0.0, 0.006) + (0.03 if i >= 40 else 0.0)
        ts = at(6) + i * 60_000
        changes += engine.on_quality(state, spec, ts, "diameter_mm", value, None, None, "P1").alerts
    out, _ = engine.reset_baselines(state, at(6) + 90 * 60_000)
    changes += out.alerts
    return [c for c in seen(changes) if c.kind in ("drift", "spc")]


def test_drift_and_spc_records_name_the_detector_of_their_evidence(
    engine: MachineEngine, spec: MachineSpec, state: MachineState
) -> None:
    changes = _quality_shift(engine, spec, state)
    spc = [c for c in changes if c.kind == "spc"]
    assert len({c.id for c in spc}) == 1 and len(spc) >= 3, "rules joining the alert are published"
    for change in changes:
        detector = change.evidence["detector"]
        if detector.startswith("rule"):
            # The rule's pattern in words, not a "shift" of the one point that completed it.
            pattern = RULE_PATTERNS[int(detector.removeprefix("rule")) - 1]
            said = f"diameter_mm (P1): {detector} ({pattern}), last point at "
        else:
            said = f"diameter_mm (P1): {detector} detects a shift of "
        assert change.message.startswith(said), change
        assert detector in change.evidence["detectors"]


def test_open_drift_alerts_are_published_only_when_detectors_or_direction_change(
    engine: MachineEngine, spec: MachineSpec, state: MachineState
) -> None:
    changes = _quality_shift(engine, spec, state)
    assert state.alerts == {}
    by_id: dict[str, list[Seen]] = {}
    for change in changes:
        by_id.setdefault(change.id, []).append(change)
    for records in by_id.values():
        assert [c.status for c in records][-1] == "resolved"
        assert not records[0].update and all(c.update for c in records[1:-1])
        published = [signature(c.kind, c.severity, c.evidence) for c in records[:-1]]
        assert len(published) == len(set(published)), "an update changes what a manager acts on"
        # Resolved with the evidence last published, and how it ended apart from it.
        assert records[-1].evidence == records[-2].evidence
        assert records[-1].resolution is not None and records[-1].resolution["by"] == "baseline_reset"
    assert sum(len(records) for records in by_id.values()) < 20, "no flood"


def test_a_drift_resolved_by_the_return_keeps_the_evidence_that_raised_it() -> None:
    plant = PlantConfig.model_validate(
        {
            "timezone": "UTC",
            "machines": [{"tenant": "acme", "site": "p1", "line": "L1", "id": "M01", "ideal_cycle_s": 55.0}],
        }
    )
    engine = MachineEngine(plant)
    spec = plant.machines[0]
    state = engine.new_state(spec)
    engine.on_state(state, spec, at(0), "running", None)
    rng = np.random.default_rng(4)
    factors = [1.0] * 150 + [1.6] * 60 + [1.0] * 60
    now = at(0)
    changes: list[AlertChange] = []
    for factor in factors:
        seconds = float(55.0 * factor * rng.lognormal(0.01, 0.03))
        now += round(seconds * 1000)
        changes += engine.on_cycle(state, spec, now, seconds).alerts
    records = [c for c in seen(changes) if c.kind == "drift"]
    assert records[-1].status == "resolved" and len({c.id for c in records}) == 1
    final, last_published = records[-1], records[-2]
    assert final.evidence == last_published.evidence
    assert final.evidence["first_ts_ms"] < last_published.at_ms + 1 < final.at_ms
    assert final.resolution is not None and final.resolution["by"] == "back_within_gate"
    assert final.resolution["relative_shift"] < 0.45 / 2
    assert final.resolution["detections"] >= 1


# -- records and state --------------------------------------------------------------------------


def test_a_published_change_is_a_snapshot_later_detections_leave_alone(
    engine: MachineEngine, spec: MachineSpec, state: MachineState
) -> None:
    first = engine.on_quality(state, spec, at(8), "len_mm", 10.5, 9.8, 10.2, "P1").alerts
    engine.on_quality(state, spec, at(8, 1), "len_mm", 10.6, 9.8, 10.2, "P1")
    assert first[0].alert.evidence["count"] == 1 and first[0].alert.evidence["value"] == 10.5
    assert state.alerts["quality_out_of_spec/len_mm|P1"].evidence["count"] == 2


def test_alert_state_round_trips_and_loads_states_stored_before_quiet() -> None:
    alert = AlertState("x", "quality_out_of_spec", "len_mm", "warning", 1, 2, "m", {"count": 1}, 3, 2)
    assert AlertState.from_dict(orjson.loads(orjson.dumps(alert.to_dict()))) == alert
    stored = alert.to_dict()
    del stored["quiet"]
    assert AlertState.from_dict(stored).quiet == 0


def test_analyze_publishes_the_escalation_and_the_resolution(tmp_path: Path, plant: PlantConfig) -> None:
    base = {"v": 1, "tenant": "acme", "site": "p1", "line": "L1", "machine": "M01"}
    lines = [{**base, "ts": at(9), "kind": "state", "state": "idle", "reason": "no_material"}]
    lines += [{**base, "ts": at(9, m), "kind": "sensor", "signal": "v", "value": 1.0} for m in range(1, 6)]
    lines.append({**base, "ts": at(9, 6), "kind": "state", "state": "down", "reason": "breakdown"})
    lines += [{**base, "ts": at(9, m), "kind": "sensor", "signal": "v", "value": 1.0} for m in range(7, 41)]
    lines.append({**base, "ts": at(9, 41), "kind": "state", "state": "running"})
    source = tmp_path / "telemetry.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    analyze_file(source, plant, tmp_path / "out", load_settings())
    records = [orjson.loads(line) for line in (tmp_path / "out" / "alerts.jsonl").read_bytes().splitlines()]
    assert [(r["status"], r["severity"], r["updated_at"], r["resolution"]) for r in records] == [
        ("open", "warning", "2026-11-25T09:00:00+00:00", None),
        ("open", "critical", "2026-11-25T09:06:00+00:00", None),
        (
            "resolved",
            "critical",
            "2026-11-25T09:41:00+00:00",
            {"by": "state_change", "state": "running", "reason": None},
        ),
    ]
    assert {r["id"] for r in records} == {records[0]["id"]}
    assert {r["started_at"] for r in records} == {"2026-11-25T09:00:00+00:00"}
    assert records[-1]["evidence"]["stopped_s"] == 41 * 60.0
