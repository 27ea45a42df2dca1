"""Simulated breaks on DST nights: local wall-clock start, configured length in elapsed time.

The demo plant's night shift (22:00-06:00) has its 30-minute lunch at 02:30, inside the hour that
Europe/Berlin repeats on 2026-10-25 and skips on 2026-03-29.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from models.plant import PlantConfig
from service.plant_file import load_demo_plant
from service.simulator.break_schedule import BREAK_PLAN, BreakSchedule, PlannedWindow

MINUTE = 60_000


def _ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


@pytest.fixture(scope="module")
def berlin() -> PlantConfig:
    return load_demo_plant().model_copy(update={"timezone": "Europe/Berlin"})


def _breaks(schedule: BreakSchedule, start_ms: int, end_ms: int) -> list[PlannedWindow]:
    found: list[PlannedWindow] = []
    at = start_ms
    while at < end_ms:
        window = schedule.window_at(at)
        if window is not None and window.reason != "no_shift" and window not in found:
            found.append(window)
        boundary = schedule.next_boundary(at)
        assert boundary is not None and boundary > at
        at = boundary
    return found


@pytest.mark.parametrize(
    ("night", "lunch_start"),
    [
        # Fall back: the first 02:30 (CEST), not 02:30 CEST to 03:00 CET (90 minutes).
        ("2026-10-24T22:00:00+02:00", "2026-10-25T02:30:00+02:00"),
        # Spring forward: 02:30 does not exist; the lunch starts when the clock jumps to 03:00 CEST.
        ("2026-03-28T22:00:00+01:00", "2026-03-29T03:00:00+02:00"),
        # An ordinary night, for comparison.
        ("2026-11-07T22:00:00+01:00", "2026-11-08T02:30:00+01:00"),
    ],
)
def test_night_breaks_last_their_length_on_dst_nights(
    berlin: PlantConfig, night: str, lunch_start: str
) -> None:
    schedule = BreakSchedule(berlin)
    begin = _ms(night)
    breaks = _breaks(schedule, begin, begin + 10 * 60 * MINUTE)
    # The night shift's three breaks, each exactly as long as planned, in order.
    night_breaks = [w for w in breaks if w.start_ms < begin + 9 * 60 * MINUTE][:3]
    lengths = [length.total_seconds() * 1000 for _, length, _ in BREAK_PLAN]
    assert [w.reason for w in night_breaks] == [reason for _, _, reason in BREAK_PLAN]
    assert [w.end_ms - w.start_ms for w in night_breaks] == lengths
    lunch = night_breaks[1]
    assert lunch.start_ms == _ms(lunch_start)


def test_a_dst_run_of_the_simulator_has_a_30_minute_night_lunch(berlin: PlantConfig) -> None:
    """The reviewer's run: ``simulate --start 2026-10-24T20:00:00+02:00 --duration 14h --seed 5``."""
    from service.simulator import PlantSimulator

    start = _ms("2026-10-24T20:00:00+02:00")
    simulator = PlantSimulator(berlin, seed=5, start_ms=start)
    lunches: dict[str, list[int]] = {}
    current: dict[str, tuple[tuple[object, object], int]] = {}  # machine: ((state, reason), since)
    for record in simulator.events(start + 14 * 60 * MINUTE):
        if record["kind"] != "state":
            continue  # heartbeats repeat the state every few minutes: only changes end a stretch
        machine, ts = str(record["machine"]), int(record["ts"])  # type: ignore[call-overload]
        state = (record["state"], record.get("reason"))
        previous = current.get(machine)
        if previous is not None and previous[0] == state:
            continue
        if previous is not None and previous[0] == ("planned_stop", "lunch"):
            lunches.setdefault(machine, []).append(ts - previous[1])
        current[machine] = (state, ts)
    assert len(lunches) == len(berlin.machines)
    for machine, durations in lunches.items():
        # Swing (18:30 local) and night lunch; a machine may be down when one starts, never longer.
        assert durations and max(durations) <= 30 * MINUTE, (machine, durations)
