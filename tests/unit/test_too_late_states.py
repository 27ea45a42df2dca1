"""Too-late events through the engine: which state holds, and how long it is believed.

docs/kpis.md, "Late and out-of-order events": the machine's state is always the newest one
*reported* (judged on the events' own times, not on where a too-late change was applied), and a
too-late event is telemetry of its own time, never of the cursor it is counted at (a state is
believed only ``state_timeout_s`` after the machine's newest reading).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from models.accounting import ClosedWindow
from models.machine import EngineOutput, MachineEngine
from models.machine_state import MachineState
from models.plant import MachineSpec, PlantConfig
from models.time_kernel import S_REPORTED

SEOUL = ZoneInfo("Asia/Seoul")
MINUTE = 60_000


def at(hh: int, mm: int = 0) -> int:
    return int(datetime(2026, 11, 25, hh, mm, tzinfo=SEOUL).timestamp() * 1000)


def make_plant(**extra: Any) -> PlantConfig:
    return PlantConfig.model_validate(
        {
            "timezone": "Asia/Seoul",
            "shifts": [
                {"name": "early", "start": "06:00", "end": "14:00"},
                {"name": "late", "start": "14:00", "end": "22:00"},
            ],
            "machines": [{"tenant": "acme", "site": "p1", "line": "L1", "id": "M01", "ideal_cycle_s": 12.0}],
            "alerts": {"oee_below": None},
            **extra,
        }
    )


class Machine:
    """One machine fed as the worker feeds it: each event, then the partition's stream time."""

    def __init__(self, plant: PlantConfig) -> None:
        self.engine = MachineEngine(plant)
        self.spec: MachineSpec = plant.machines[0]
        self.state: MachineState = self.engine.new_state(self.spec)
        self.outputs: list[EngineOutput] = []
        self.stream_ms = 0

    def _keep(self, out: EngineOutput, ts: int | None = None) -> EngineOutput:
        self.outputs.append(out)
        if ts is not None:
            self.stream_ms = max(self.stream_ms, ts)
            self.outputs.append(self.engine.on_stream_time(self.state, self.spec, self.stream_ms))
        return out

    def state_at(self, ts: int, name: str, reason: str | None = None) -> EngineOutput:
        return self._keep(self.engine.on_state(self.state, self.spec, ts, name, reason), ts)

    def count_at(self, ts: int, good: int) -> EngineOutput:
        return self._keep(self.engine.on_count(self.state, self.spec, ts, good, 0, None, None), ts)

    def tick(self, ts: int) -> EngineOutput:
        return self._keep(self.engine.on_tick(self.state, self.spec, ts))

    def hour(self, hh: int) -> ClosedWindow:
        """The hour's newest revision."""
        windows = [
            closed
            for out in self.outputs
            for closed in out.closed
            if closed.window.kind == "hour" and closed.window.start_ms == at(hh)
        ]
        return max(windows, key=lambda closed: closed.revision)

    def opened(self, kind: str) -> list[int]:
        return [
            change.at_ms
            for out in self.outputs
            for change in out.alerts
            if change.alert.kind == kind and change.status == "open"
        ]


@pytest.mark.parametrize("lateness_s", [0, 300])
def test_a_late_stop_and_restart_pair_leaves_the_machine_running(lateness_s: int) -> None:
    """Counts every 5 min; after the 11:05 count the gateway delivers ``down/jam`` stamped 10:59,
    then ``running`` stamped 11:00. The newest state reported is ``running``."""
    machine = Machine(make_plant(allowed_lateness_s=lateness_s))
    machine.state_at(at(9), "running")
    for ts in range(at(9, 5), at(11, 5) + 1, 5 * MINUTE):
        machine.count_at(ts, 25)
    assert machine.state_at(at(10, 59), "down", "jam").too_late
    out = machine.state_at(at(11), "running")
    assert out.too_late == (lateness_s == 0)  # within 300 s of 11:05: put in its place
    assert machine.state.state == "running"
    assert machine.state.ledger.get(S_REPORTED) == at(11)  # the newest report's own time
    for ts in range(at(11, 10), at(13, 5) + 1, 5 * MINUTE):
        machine.count_at(ts, 25)

    assert machine.opened("machine_stopped") == [] and "machine_stopped" not in machine.state.alerts
    for hh in (11, 12):
        figures = machine.hour(hh).window.figures()
        assert (figures.run_s, figures.availability_loss_s, figures.availability) == (3600, 0, 1.0)
    eleven = machine.hour(11).window
    if lateness_s == 0:
        # Nothing had superseded the down when it came: it took effect at 11:05, a breakdown (a
        # failure) that the running reported after it ended at once. Time is not rewritten.
        assert (eleven.failures, eleven.late_events) == (1, 2)
    else:
        # The running came within the lateness and supersedes the down: it never took effect.
        assert (eleven.failures, eleven.late_events) == (0, 1)
    assert machine.state.totals.good == 25 * 49


def test_a_too_late_restart_superseding_a_late_stop_is_judged_on_reported_times() -> None:
    """The reverse pair: ``running`` stamped 10:59 and then ``down`` stamped 11:00, both too late
    (lateness 0) while the machine ran: the machine is down from the cursor on."""
    machine = Machine(make_plant())
    machine.state_at(at(9), "running")
    machine.count_at(at(11, 5), 25)
    machine.state_at(at(10, 59), "running")
    machine.state_at(at(11), "down", "jam")
    assert machine.state.state == "down" and machine.state.state_since_ms == at(11, 5)
    machine.state_at(at(10, 58), "running")  # older than the newest report: only counted
    assert machine.state.state == "down" and machine.state.totals.late_events == 3


def test_a_too_late_event_is_seen_at_its_own_time_not_at_the_cursor() -> None:
    """The machine's readings stop at 11:40 in its own time while the plant's clock (another
    machine's, on the same partition) ticks it on to 12:20; its 11:45..12:00 readings and a
    ``down`` stamped 12:00 then arrive too late. Its state is believed until 12:15 (its newest
    reading plus the state timeout), not 15 min past the cursor: 12:20 onwards is unknown, and
    the down raises no ``machine_stopped`` (its stop is never believed ``down_after_s`` long)."""
    machine = Machine(make_plant(state_timeout_s=900))
    machine.state_at(at(6), "running")
    for ts in range(at(6, 5), at(11, 40) + 1, 5 * MINUTE):
        machine.count_at(ts, 25)
    machine.tick(at(12, 20))
    assert machine.state.last_seen_ms == at(11, 40)
    for ts in range(at(11, 45), at(11, 55) + 1, 5 * MINUTE):
        assert machine.count_at(ts, 25).too_late
    assert machine.state.last_seen_ms == at(11, 55)
    machine.state_at(at(12), "down", "jam")
    assert machine.state.state == "down" and machine.state.last_seen_ms == at(12)
    machine.outputs.append(machine.engine.on_stream_time(machine.state, machine.spec, at(13)))
    assert machine.opened("machine_stopped") == []
    machine.tick(at(13, 30))

    twelve = machine.hour(12).window.figures()
    assert (twelve.run_s, twelve.availability_loss_s, twelve.unknown_s) == (0, 0, 3600)
    eleven = machine.hour(11).window.figures()
    assert (eleven.run_s, eleven.unknown_s) == (55 * 60, 5 * 60)  # believed until 11:40 + 15 min


def test_a_state_stored_before_the_reported_time_was_kept_judges_on_the_state_start() -> None:
    """A table state written by the previous version has no ``state_reported_ms``: it loads, and a
    too-late change is judged against the state's start, as then."""
    machine = Machine(make_plant())
    machine.state_at(at(9), "running")
    machine.count_at(at(10), 25)
    stored = machine.state.to_dict()
    assert stored.pop("state_reported_ms") == at(9)
    machine.state = MachineState.from_dict(stored)
    assert machine.state.ledger.get(S_REPORTED) is None
    machine.state_at(at(8, 59), "down", "jam")  # older than the running since 09:00: only counted
    assert machine.state.state == "running" and machine.state.totals.late_events == 1
    machine.state_at(at(9, 30), "down", "jam")  # newer: takes effect at 10:00
    assert machine.state.state == "down" and machine.state.state_since_ms == at(10)
    assert machine.state.ledger.get(S_REPORTED) == at(9, 30)


def test_a_superseded_late_stop_stays_out_across_a_restart() -> None:
    """With allowed lateness the cursor-applied stop sits in the machine's lateness log; the state
    stored and reloaded between the pair (a worker restart) gives the same result."""
    machine = Machine(make_plant(allowed_lateness_s=300))
    machine.state_at(at(9), "running")
    for ts in range(at(9, 5), at(11, 5) + 1, 5 * MINUTE):
        machine.count_at(ts, 25)
    machine.state_at(at(10, 59), "down", "jam")
    machine.state = MachineState.from_dict(machine.state.to_dict())
    machine.state_at(at(11), "running")
    assert machine.state.state == "running" and machine.state.state_since_ms == at(9)
    for ts in range(at(11, 10), at(12, 5) + 1, 5 * MINUTE):
        machine.count_at(ts, 25)
    eleven = machine.hour(11).window
    assert (eleven.failures, eleven.late_events, eleven.figures().run_s) == (0, 1, 3600)


def test_a_tick_past_the_belief_of_a_stop_opens_no_stop_alert() -> None:
    """A machine reports ``down`` and falls silent: its stop is believed for ``state_timeout_s``
    (900 s), after which its time is unknown. A tick (``close_silent_after_s``) that accounts it to
    08:00 showed the hour as unknown but opened ``machine_stopped`` (down_after_s 1800) for a stop
    that stream time alone, capped at the belief, never judged long enough."""
    machine = Machine(make_plant(alerts={"oee_below": None, "down_after_s": 1800}))
    machine.state_at(at(6), "running")
    machine.state_at(at(6, 20), "down", "jam")
    machine.tick(at(8))
    assert machine.opened("machine_stopped") == [] and "machine_stopped" not in machine.state.alerts
    assert machine.hour(7).window.kind == "hour"  # the tick did account the silent hours
    # Believed long enough, the same stop is alerted on a tick as on stream time.
    longer = Machine(make_plant(alerts={"oee_below": None, "down_after_s": 600}))
    longer.state_at(at(6), "running")
    longer.state_at(at(6, 20), "down", "jam")
    longer.tick(at(8))
    assert len(longer.opened("machine_stopped")) == 1


@pytest.mark.parametrize("lateness_s", [0, 300])
def test_of_two_too_late_changes_at_one_cursor_the_newer_report_holds(lateness_s: int) -> None:
    """Both take effect at the cursor (10:00). The log sorted entries at one position by their
    text, so with lateness the older report (running, 09:10) replayed after the newer (down, 09:20)
    and won, while the reported time said 09:20 (review)."""
    machine = Machine(make_plant(allowed_lateness_s=lateness_s))
    machine.state_at(at(9), "running")
    machine.count_at(at(10), 5)
    machine.state_at(at(9, 10), "running")
    machine.state_at(at(9, 20), "down", "jam")
    assert machine.state.ledger.state_reason == ("down", "jam")
    assert machine.state.ledger.get(S_REPORTED) == at(9, 20)
    assert machine.state.state_since_ms == at(10)
