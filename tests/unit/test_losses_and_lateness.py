"""Hand-worked cases: micro-stops, the six big losses, startup rejects, late-event corrections, DST."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from models.accounting import ClosedWindow
from models.machine import EngineOutput, MachineEngine
from models.machine_state import MachineState
from models.plant import MachineSpec, PlantConfig

SEOUL = ZoneInfo("Asia/Seoul")


def at(hh: int, mm: int = 0, ss: int = 0, day: int = 25) -> int:
    return int(datetime(2026, 11, day, hh, mm, ss, tzinfo=SEOUL).timestamp() * 1000)


def make_plant(**extra: Any) -> PlantConfig:
    return PlantConfig.model_validate(
        {
            "timezone": "Asia/Seoul",
            "shifts": [
                {"name": "day", "start": "06:00", "end": "14:00"},
                {"name": "swing", "start": "14:00", "end": "22:00"},
                {"name": "night", "start": "22:00", "end": "06:00"},
            ],
            "machines": [{"tenant": "acme", "site": "p1", "line": "L1", "id": "M01", "ideal_cycle_s": 12.0}],
            "state_timeout_s": 3600,
            "alerts": {"oee_below": None},
            **extra,
        }
    )


class Machine:
    """One machine's engine and state, collecting every closed window."""

    def __init__(self, plant: PlantConfig) -> None:
        self.engine = MachineEngine(plant)
        self.spec: MachineSpec = plant.machines[0]
        self.state: MachineState = self.engine.new_state(self.spec)
        self.closed: list[ClosedWindow] = []
        self.outputs: list[EngineOutput] = []

    def _keep(self, out: EngineOutput) -> EngineOutput:
        self.closed.extend(out.closed)
        self.outputs.append(out)
        return out

    def state_at(self, ts: int, name: str, reason: str | None = None) -> EngineOutput:
        return self._keep(self.engine.on_state(self.state, self.spec, ts, name, reason))

    def count_at(self, ts: int, good: int, scrap: int = 0, reason: str | None = None) -> EngineOutput:
        return self._keep(self.engine.on_count(self.state, self.spec, ts, good, scrap, None, reason))

    def windows(self, kind: str) -> list[ClosedWindow]:
        return [closed for closed in self.closed if closed.window.kind == kind]


def test_short_stops_are_small_stops_and_long_ones_availability_loss() -> None:
    machine = Machine(make_plant(micro_stop_s=120))
    machine.state_at(at(6), "running")
    machine.state_at(at(6, 10), "idle", "jam")  # 60 s: small stop
    machine.state_at(at(6, 11), "running")
    machine.state_at(at(6, 20), "down", "motor")  # 600 s: breakdown
    machine.state_at(at(6, 30), "running")
    machine.state_at(at(6, 40), "idle")  # 90 s idle then 20 s down: one 110 s stop, a small stop
    machine.state_at(at(6, 41, 30), "down")
    machine.state_at(at(6, 41, 50), "running")
    machine.count_at(at(6, 50), 200, 10, "burr")
    machine.state_at(at(7), "running")
    [hour] = machine.windows("hour")
    figures = hour.window.figures()
    assert figures.planned_s == 3600
    assert figures.availability_loss_s == 600  # only the breakdown
    assert figures.run_s == 3000  # small stops stay inside actual production time
    assert figures.availability == 3000 / 3600
    assert figures.performance == pytest.approx(210 * 12 / 3000)
    assert figures.quality == pytest.approx(200 / 210)
    assert figures.oee == figures.availability * figures.performance * figures.quality
    assert figures.micro_stops == 2
    assert figures.failures == 1  # the short down inside the small stop is no breakdown
    assert figures.mttr_s == 600
    assert figures.big_losses_s == pytest.approx(
        {
            "unplanned_stops": 600.0,
            "setup_adjustments": 0.0,
            "small_stops": 170.0,
            "slow_cycles": 3000 - 210 * 12 - 170.0,
            "startup_rejects": 0.0,
            "production_rejects": 10 * 12.0,
        }
    )
    # PBT = fully productive time + the six big losses, when no cycle beat its ideal.
    fully_productive = 200 * 12
    assert fully_productive + sum(figures.big_losses_s.values()) == pytest.approx(figures.planned_s)  # type: ignore[arg-type]
    assert fully_productive / figures.planned_s == pytest.approx(figures.oee)
    assert [
        (loss["state"], loss["reason"], loss["big_loss"], loss["seconds"]) for loss in figures.top_losses
    ] == [
        ("down", "motor", "unplanned_stops", 600.0),
        ("idle", None, "small_stops", 90.0),
        ("idle", "jam", "small_stops", 60.0),
        ("down", None, "small_stops", 20.0),
    ]


def test_window_waits_for_a_stop_across_its_end() -> None:
    machine = Machine(make_plant(micro_stop_s=120))
    machine.state_at(at(6), "running")
    machine.state_at(at(6, 59, 30), "idle", "jam")
    machine.count_at(at(7, 0, 5), 0)  # past the hour's end, the stop still undecided: the hour waits
    assert machine.windows("hour") == []
    assert [window.start_ms for window in machine.state.closing] == [at(6)]
    out = machine.state_at(at(7, 0, 30), "running")  # a 60 s stop: a small stop in both hours
    [hour] = [closed for closed in out.closed if closed.window.kind == "hour"]
    figures = hour.window.figures()
    assert figures.micro_stops == 1 and figures.big_losses_s["small_stops"] == 30.0
    assert figures.availability == 1.0 and figures.run_s == 3600
    current = machine.state.windows["hour"]
    assert current.micro_stops == 0  # counted where the stop started
    assert current.figures().big_losses_s["small_stops"] == 30.0
    assert machine.state.closing == []


def test_long_stop_across_a_window_end_is_decided_at_the_threshold() -> None:
    machine = Machine(make_plant(micro_stop_s=120))
    machine.state_at(at(6), "running")
    machine.state_at(at(6, 59), "down", "motor")
    out = machine.state_at(at(7, 5), "running")
    hours = [closed.window for closed in out.closed if closed.window.kind == "hour"]
    assert [window.start_ms for window in hours] == [at(6)]
    six = hours[0].figures()
    assert six.availability_loss_s == 60 and six.failures == 1 and six.micro_stops == 0
    assert machine.state.windows["hour"].figures().availability_loss_s == 300
    assert machine.state.windows["hour"].failures == 0  # the breakdown started in the hour before


def test_first_units_after_a_setup_are_startup_rejects() -> None:
    machine = Machine(make_plant(startup_s=600))
    machine.state_at(at(6), "setup", "changeover")
    machine.state_at(at(6, 20), "running")
    machine.count_at(at(6, 25), 20, 5, "warmup")
    machine.count_at(at(6, 45), 100, 3, "burr")
    machine.state_at(at(7), "running")
    [hour] = machine.windows("hour")
    figures = hour.window.figures()
    assert figures.big_losses_s["setup_adjustments"] == 1200.0
    assert figures.big_losses_s["startup_rejects"] == 5 * 12.0
    assert figures.big_losses_s["production_rejects"] == 3 * 12.0
    assert figures.setup_ratio == 1200 / 3600


def test_big_loss_must_fit_the_category() -> None:
    with pytest.raises(ValidationError, match="big_loss 'small_stops' does not fit category 'availability'"):
        make_plant(losses=[{"state": "idle", "category": "availability", "big_loss": "small_stops"}])
    with pytest.raises(ValidationError, match=r"micro_stop_s \(3600\) must be shorter than state_timeout_s"):
        make_plant(micro_stop_s=3600)
    plant = make_plant(
        losses=[{"state": "idle", "reason": "slow", "category": "performance", "big_loss": "slow_cycles"}]
    )
    assert plant.big_loss("idle", "slow") == "slow_cycles"
    assert plant.big_loss("idle", None) == "unplanned_stops"
    assert plant.big_loss("setup", "tool") == "setup_adjustments"
    assert plant.big_loss("planned_stop", None) is None


def test_late_event_within_lateness_emits_revisions() -> None:
    machine = Machine(make_plant(allowed_lateness_s=300))
    machine.state_at(at(6), "running")
    machine.count_at(at(6, 59), 100)
    machine.state_at(at(7, 0, 10), "running")
    [first] = machine.windows("hour")
    assert first.revision == 0 and first.window.good == 100

    out = machine.count_at(at(6, 58), 20)  # 2 min late, within 5 min: the hour is corrected
    assert out.late and not out.too_late
    [second] = [closed for closed in out.closed if closed.window.kind == "hour"]
    assert second.revision == 1 and second.window.good == 120 and second.window.start_ms == at(6)

    out = machine.state_at(at(6, 56), "down", "jam")  # a late stop: 06:56 until the next state
    [third] = [closed for closed in out.closed if closed.window.kind == "hour"]
    assert third.revision == 2 and third.window.figures().availability_loss_s == 240
    out = machine.state_at(at(6, 57), "running")
    [fourth] = [closed for closed in out.closed if closed.window.kind == "hour"]
    final = fourth.window.figures()
    assert fourth.revision == 3 and final.availability_loss_s == 60 and final.failures == 1

    out = machine.count_at(at(6, 30), 7)  # 30 min late: beyond the lateness, counted only
    assert out.too_late and out.closed == []
    assert machine.state.totals.late_events == 1
    assert machine.state.windows["hour"].late_events == 1
    # A too-late state change that a newer one (running since 06:57) superseded is only counted.
    out = machine.state_at(at(6, 40), "down", "motor")
    assert out.too_late and [closed for closed in out.closed if closed.window.kind == "hour"] == []
    assert machine.state.state == "running" and machine.state.state_since_ms == at(6, 57)
    assert machine.state.totals.late_events == 2

    # The corrected hour is what the events in order give.
    in_order = Machine(make_plant(allowed_lateness_s=300))
    in_order.state_at(at(6), "running")
    in_order.state_at(at(6, 56), "down", "jam")
    in_order.state_at(at(6, 57), "running")
    in_order.count_at(at(6, 58), 20)
    in_order.count_at(at(6, 59), 100)
    in_order.state_at(at(7, 0, 10), "running")
    [expected] = in_order.windows("hour")
    assert fourth.window.figures() == expected.window.figures()


def test_a_late_event_that_changes_nothing_emits_no_revision() -> None:
    machine = Machine(make_plant(allowed_lateness_s=300))
    machine.state_at(at(6), "running")
    machine.state_at(at(7, 0, 10), "running")
    out = machine.state_at(at(7, 0, 5), "running")  # a repeated state report after the hour's end
    assert out.late and [closed for closed in out.closed if closed.window.kind == "hour"] == []


def test_too_late_state_change_takes_effect_now_without_lateness() -> None:
    machine = Machine(make_plant())
    machine.state_at(at(6), "running")
    machine.count_at(at(6, 10), 10)
    out = machine.state_at(at(6, 5), "down", "motor")
    assert out.too_late
    assert machine.state.state == "down" and machine.state.state_since_ms == at(6, 10)
    out = machine.count_at(at(6, 9), 5)  # late units are not merged into the open hour
    assert out.too_late and machine.state.windows["hour"].good == 10
    assert machine.state.totals.good == 15  # but lifetime totals count every accepted unit


def test_lateness_state_round_trips_through_json() -> None:
    plant = make_plant(allowed_lateness_s=300, micro_stop_s=60)
    machine = Machine(plant)
    machine.state_at(at(6), "running")
    machine.state_at(at(6, 30), "idle", "jam")
    restored = MachineState.from_dict(machine.state.to_dict())
    assert restored.to_dict() == machine.state.to_dict()
    assert restored.lateness is not None and restored.lateness.events


@pytest.mark.parametrize(
    ("day", "hours"),
    [(27, 7), (24, 9)],  # Europe/Berlin: 2027-03-28 springs forward, 2026-10-25 falls back
    ids=["spring-forward", "fall-back"],
)
def test_night_shift_on_dst_days_through_the_engine(day: int, hours: int) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    month, year = (3, 2027) if hours == 7 else (10, 2026)
    plant = PlantConfig.model_validate(
        {
            "timezone": "Europe/Berlin",
            "shifts": [{"name": "night", "start": "22:00", "end": "06:00"}],
            "machines": [{"tenant": "acme", "site": "p1", "line": "L1", "id": "M01", "ideal_cycle_s": 60.0}],
            "state_timeout_s": 3600,
            "alerts": {"oee_below": None},
        }
    )
    machine = Machine(plant)
    start = int(datetime(year, month, day, 22, 0, tzinfo=berlin).timestamp() * 1000)
    end = int(datetime(year, month, day + 1, 6, 0, tzinfo=berlin).timestamp() * 1000)
    machine.state_at(start, "running")
    for ts in range(start + 1_800_000, end, 1_800_000):  # a heartbeat every half hour
        machine.count_at(ts, 30)
    machine.state_at(end + 1000, "running")
    [shift] = machine.windows("shift")
    figures = shift.window.figures()
    assert shift.window.shift == "night"
    assert figures.window_s == hours * 3600 and figures.planned_s == hours * 3600
    assert figures.good == 30 * (2 * hours - 1)
    assert figures.availability == 1.0
    assert figures.performance == pytest.approx(figures.good * 60 / (hours * 3600))
    assert len(machine.windows("hour")) == hours


def test_too_late_state_change_takes_effect_now_with_lateness() -> None:
    machine = Machine(make_plant(allowed_lateness_s=60))
    machine.state_at(at(6), "running")
    machine.count_at(at(6, 20), 10)
    out = machine.state_at(at(6, 15), "down", "motor")  # 5 min late, lateness 1 min
    assert out.too_late
    assert machine.state.state == "down" and machine.state.state_since_ms == at(6, 20)
    machine.state_at(at(6, 30), "running")
    assert machine.state.windows["hour"].figures().availability_loss_s == 600
    assert machine.state.totals.late_events == 1


def test_a_tick_closes_a_silent_machines_windows_with_the_silence_as_unknown() -> None:
    """The machine runs from 06:00, sends its last event at 06:40 and then nothing. A tick of the
    plant's clock at 08:05 closes the 06:00 and 07:00 hours: running is believed for the state
    timeout (20 min) after 06:40, the rest is unknown. The tick is no event of the machine."""
    machine = Machine(make_plant(state_timeout_s=1200))
    machine.state_at(at(6), "running")
    for minute in (10, 20, 30, 40):
        machine.count_at(at(6, minute), 25)
    assert machine.windows("hour") == []
    machine._keep(machine.engine.on_tick(machine.state, machine.spec, at(8, 5)))
    first, second = (closed.window.figures() for closed in machine.windows("hour"))
    assert (first.run_s, first.unknown_s) == (3600, 0)
    assert (second.run_s, second.unknown_s) == (0, 3600)
    assert second.coverage == 0 and second.availability is None
    assert machine.state.cursor_ms == at(8, 5) and machine.state.last_seen_ms == at(6, 40)
    assert machine.state.totals.events == 5
    # A tick behind the machine's own time changes nothing; its next event carries on from 08:05.
    assert machine.engine.on_tick(machine.state, machine.spec, at(7)).closed == []
    machine.state_at(at(8, 10), "idle")
    assert machine.state.windows["hour"].figures().unknown_s == 600
