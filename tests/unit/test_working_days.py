"""Shifts on working days only, and holidays, through ``linepulse analyze`` and the simulator.

A plant whose one shift runs Monday to Friday, with Christmas Eve a holiday: the weekend and the
holiday are unscheduled (no planned busy time, so no availability or coverage lost), while Friday's
and Monday's shifts count as usual. Before ``days`` and ``holidays`` existed, a machine switched off
over the weekend showed two days of missing data in shifts that never took place.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import orjson

from models.calendar import PlantCalendar
from service.cli import main
from service.plant_file import parse_plant
from service.simulator.break_schedule import BreakSchedule

PLANT = """\
timezone: Europe/Berlin
shifts:
  - {name: early, start: "06:00", end: "14:00", days: [mon, tue, wed, thu, fri]}
holidays: [2026-12-24]
machines:
  - {tenant: acme, site: p1, line: L1, id: M01, ideal_cycle_s: 12.0}
"""
ENVELOPE = {"v": 1, "tenant": "acme", "site": "p1", "line": "L1", "machine": "M01"}


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def _shift_of_production(day: str) -> list[dict[str, object]]:
    """06:00-14:00 running at ideal speed (25 parts every 5 min), then switched off."""
    start = ms(f"{day}T06:00:00+01:00")
    events: list[dict[str, object]] = [{**ENVELOPE, "ts": start, "kind": "state", "state": "running"}]
    events += [
        {**ENVELOPE, "ts": start + k * 300_000, "kind": "count", "good": 25, "scrap": 0} for k in range(1, 96)
    ]
    events.append({**ENVELOPE, "ts": start + 8 * 3_600_000, "kind": "state", "state": "offline"})
    return events


def test_weekends_and_holidays_are_unscheduled(tmp_path: Path) -> None:
    plant, telemetry, out = tmp_path / "plant.yaml", tmp_path / "telemetry.jsonl", tmp_path / "out"
    plant.write_text(PLANT)
    # Friday the 18th, Monday the 21st, Wednesday the 23rd, Friday the 25th; the 24th is a holiday.
    days = ("2026-12-18", "2026-12-21", "2026-12-23", "2026-12-25")
    events = [event for day in days for event in _shift_of_production(day)]
    telemetry.write_bytes(b"\n".join(orjson.dumps(event) for event in events) + b"\n")
    assert main(["analyze", str(telemetry), "--config", str(plant), "--out", str(out)]) == 0
    records = [orjson.loads(line) for line in (out / "kpis.jsonl").read_bytes().splitlines()]
    shifts = {r["start"][:10]: r for r in records if r["window"] == "shift"}
    # No shift on the weekend (19th, 20th) or the holiday (24th). Tuesday the 22nd had one, which
    # the switched-off machine missed: lost coverage, unlike the days without a shift.
    assert sorted(shifts) == sorted([*days, "2026-12-22"])
    for day in days:
        shift = shifts[day]
        assert shift["shift"] == "early" and shift["planned_s"] == 28_800.0
        assert shift["availability"] == 1.0 and shift["coverage"] == 1.0, shift
    assert shifts["2026-12-22"]["coverage"] == 0.0
    assert shifts["2026-12-22"]["losses_s"] == {"no_data/-": 28_800.0}
    production_days = {r["start"][:10]: r for r in records if r["window"] == "day"}
    for idle in ("2026-12-19", "2026-12-20", "2026-12-24"):
        day = production_days[idle]
        assert day["planned_s"] == 0.0 and day["losses_s"] == {}, day
        assert day["availability"] is None and day["coverage"] is None


def test_the_simulator_plans_no_work_over_the_weekend() -> None:
    schedule = BreakSchedule(parse_plant(PLANT, "plant.yaml"))
    window = schedule.window_at(ms("2026-12-19T12:00:00+01:00"))  # Saturday noon
    assert window is not None and window.reason == "no_shift"
    assert window.start_ms == ms("2026-12-18T14:00:00+01:00")
    assert window.end_ms == ms("2026-12-21T06:00:00+01:00")
    holiday = schedule.window_at(ms("2026-12-24T10:00:00+01:00"))
    assert holiday is not None and holiday.end_ms == ms("2026-12-25T06:00:00+01:00")


def test_each_site_keeps_its_own_holidays() -> None:
    """Factories in two countries close on different public holidays: a site's ``holidays`` replace
    the plant's for that site; a site without them keeps the plant's."""
    plant = parse_plant(
        PLANT
        + "  - {tenant: acme, site: kr, line: L9, id: K01, ideal_cycle_s: 12.0}\n"
        + "sites:\n  - {tenant: acme, site: kr, timezone: Asia/Seoul, holidays: [2026-12-25]}\n",
        "plant.yaml",
    )
    berlin, seoul = PlantCalendar.for_site(plant, "acme", "p1"), PlantCalendar.for_site(plant, "acme", "kr")
    assert berlin.shift_at(ms("2026-12-24T10:00:00+01:00")) is None  # the plant's holiday
    assert berlin.shift_at(ms("2026-12-25T10:00:00+01:00")) is not None
    assert seoul.shift_at(ms("2026-12-24T10:00:00+09:00")) is not None
    assert seoul.shift_at(ms("2026-12-25T10:00:00+09:00")) is None  # the site's own
    schedule = BreakSchedule(plant, "acme", "kr")
    closed = schedule.window_at(ms("2026-12-25T10:00:00+09:00"))
    assert closed is not None and closed.reason == "no_shift"
