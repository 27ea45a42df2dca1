"""A calendar per site: a Berlin plant file with a Seoul site keeps each site's zone, shifts and day.

Expected windows are worked out by hand: Berlin leaves summer time on Sunday 2026-10-25 at 03:00
CEST (01:00 UTC), so the night shift from Saturday 22:00 +02:00 to Sunday 06:00 +01:00 lasts nine
hours; Seoul (+09:00 all year) runs two twelve-hour shifts, day 08:00-20:00 and night 20:00-08:00.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest

from models.calendar import PlantCalendar
from models.machine_state import MachineState
from models.plant import PlantConfig
from service.cli import main
from service.exceptions import ConfigError
from service.plant_file import parse_plant
from service.simulator import PlantSimulator
from service.simulator.break_schedule import BreakSchedule
from service.simulator.engine import SimOptions
from service.web.routes import machine_view
from service.web.staleness import Silence
from streams.app import LinepulseStream
from streams.live import Counters
from streams.processing import Applied, TelemetryProcessor

HOUR_MS = 3_600_000

TWO_SITES = """
timezone: Europe/Berlin
shifts:
  - {name: early, start: "06:00", end: "14:00"}
  - {name: late, start: "14:00", end: "22:00"}
  - {name: night, start: "22:00", end: "06:00"}
machines:
  - {tenant: acme, site: berlin, line: B1, id: B01, ideal_cycle_s: 10.0}
  - {tenant: acme, site: seoul, line: S1, id: S01, ideal_cycle_s: 10.0}
sites:
  - tenant: acme
    site: seoul
    timezone: Asia/Seoul
    shifts:
      - {name: day, start: "08:00", end: "20:00"}
      - {name: night, start: "20:00", end: "08:00"}
"""

# The same plant without its sites: entry, as a Berlin plant file would have been before.
BERLIN_ONLY = TWO_SITES.split("sites:", maxsplit=1)[0]

# What the Seoul site's calendar is, as a plant file of its own.
SEOUL_ONLY = """
timezone: Asia/Seoul
shifts:
  - {name: day, start: "08:00", end: "20:00"}
  - {name: night, start: "20:00", end: "08:00"}
machines:
  - {tenant: acme, site: seoul, line: S1, id: S01, ideal_cycle_s: 10.0}
"""

SITES = {"B01": "berlin", "S01": "seoul"}
LINES = {"B01": "B1", "S01": "S1"}


def utc_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).astimezone(UTC).timestamp() * 1000)


def event(machine: str, ts_ms: int, kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "tenant": "acme",
        "site": SITES[machine],
        "line": LINES[machine],
        "machine": machine,
        "ts": ts_ms,
        "kind": kind,
        **fields,
    }


def telemetry() -> list[dict[str, Any]]:
    """Both machines run from Saturday 19:00 UTC to Sunday 06:30 UTC, with one ten-minute stop at
    01:00 UTC (just after Berlin's change) and quality checks at 19:30 and 23:30 UTC."""
    start, end = utc_ms("2026-10-24T19:00:00+00:00"), utc_ms("2026-10-25T06:30:00+00:00")
    down, up = utc_ms("2026-10-25T01:00:00+00:00"), utc_ms("2026-10-25T01:10:00+00:00")
    checks = [utc_ms("2026-10-24T19:30:00+00:00"), utc_ms("2026-10-24T23:30:00+00:00")]
    records = []
    for machine in SITES:
        records.append(event(machine, start, "state", state="running"))
        for ts in range(start + 600_000, end + 1, 600_000):
            if ts == down:
                records.append(event(machine, ts, "state", state="down", reason="jam"))
            elif ts == up:
                records.append(event(machine, ts, "state", state="running"))
            else:
                records.append(event(machine, ts, "count", good=60))
        for ts in checks:
            records.append(
                event(machine, ts, "quality", characteristic="bore", value=10.0, lsl=9.0, usl=11.0)
            )
    return sorted(records, key=lambda record: (record["ts"], record["machine"]))


def run(plant: PlantConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, MachineState]]:
    processor = TelemetryProcessor(plant, max_payload_bytes=1 << 20, max_future_ms=300_000)
    states: dict[str, MachineState] = {}
    kpis: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    for offset, record in enumerate(telemetry()):
        value = orjson.dumps(record)
        outcome = processor.process(
            f"acme/{record['machine']}".encode(), value, timestamp_ms=record["ts"],
            load_state=states.get, source="t:0", offset=offset,
        )  # fmt: skip
        assert isinstance(outcome, Applied), outcome
        states[outcome.state.key] = outcome.state
        kpis += [kpi.model_dump(mode="json") for kpi in outcome.kpis]
        alerts += [alert.model_dump(mode="json") for alert in outcome.alerts]
    return kpis, alerts, states


def windows(kpis: list[dict[str, Any]], machine: str, kind: str) -> list[tuple[str | None, str, str, int]]:
    return [
        (kpi["shift"], kpi["start"], kpi["end"], kpi["end_ms"] - kpi["start_ms"])
        for kpi in kpis
        if kpi["machine"] == machine and kpi["window"] == kind
    ]


# What each site's closed windows are, by hand (the first ones begin before the machines were seen).
BERLIN_SHIFTS = [
    ("late", "2026-10-24T14:00:00+02:00", "2026-10-24T22:00:00+02:00", 8 * HOUR_MS),
    ("night", "2026-10-24T22:00:00+02:00", "2026-10-25T06:00:00+01:00", 9 * HOUR_MS),
]
SEOUL_SHIFTS = [("night", "2026-10-24T20:00:00+09:00", "2026-10-25T08:00:00+09:00", 12 * HOUR_MS)]
BERLIN_DAYS = [(None, "2026-10-24T06:00:00+02:00", "2026-10-25T06:00:00+01:00", 25 * HOUR_MS)]
# The site's day starts with its own first shift (08:00), not the plant's (06:00).
SEOUL_DAYS = [(None, "2026-10-24T08:00:00+09:00", "2026-10-25T08:00:00+09:00", 24 * HOUR_MS)]


def check_windows(kpis: list[dict[str, Any]]) -> None:
    assert windows(kpis, "B01", "shift") == BERLIN_SHIFTS
    assert windows(kpis, "S01", "shift") == SEOUL_SHIFTS
    assert windows(kpis, "B01", "day") == BERLIN_DAYS
    assert windows(kpis, "S01", "day") == SEOUL_DAYS
    berlin_hours = [start for _, start, _, _ in windows(kpis, "B01", "hour")]
    # The clock reads 02:00 twice in Berlin: once in summer time, once in winter time.
    assert "2026-10-25T02:00:00+02:00" in berlin_hours and "2026-10-25T02:00:00+01:00" in berlin_hours
    seoul_hours = windows(kpis, "S01", "hour")
    assert seoul_hours[0][1] == "2026-10-25T04:00:00+09:00"  # 19:00 UTC, the first hour seen
    assert seoul_hours[-1][1] == "2026-10-25T14:00:00+09:00"
    assert all(start.endswith("+09:00") and length == HOUR_MS for _, start, _, length in seoul_hours)
    assert len(seoul_hours) == 11  # 19:00 to 06:00 UTC, no hour longer or shorter than an hour
    assert len(windows(kpis, "B01", "hour")) == 11


def test_each_site_has_its_own_windows_offsets_and_shift_names_in_the_processor() -> None:
    plant = parse_plant(TWO_SITES, "two-sites.yaml")
    kpis, alerts, states = run(plant)
    check_windows(kpis)
    stopped = {
        alert["machine"]: alert["started_at"] for alert in alerts if alert["kind"] == "machine_stopped"
    }
    assert stopped == {"B01": "2026-10-25T02:00:00+01:00", "S01": "2026-10-25T10:00:00+09:00"}
    processor = TelemetryProcessor(plant, max_payload_bytes=1 << 20, max_future_ms=300_000)
    # Berlin 21:30 and 01:30 local: late and night; Seoul 04:30 and 08:30 local: night and day.
    assert sorted(processor.engine.capability(states["acme/B01"])) == ["bore|-|late", "bore|-|night"]
    assert sorted(processor.engine.capability(states["acme/S01"])) == ["bore|-|day", "bore|-|night"]
    stream = cast(LinepulseStream, SimpleNamespace(processor=processor))
    silent = Silence(silent_s=0.0, received_ago_s=0.0, stale=False)
    seoul_view, berlin_view = (
        machine_view(stream, states["acme/S01"], silent, Counters.of(states["acme/S01"])),
        machine_view(stream, states["acme/B01"], silent, Counters.of(states["acme/B01"])),
    )
    assert (seoul_view["last_seen"], berlin_view["last_seen"]) == (
        "2026-10-25T15:30:00+09:00",
        "2026-10-25T07:30:00+01:00",
    )
    assert seoul_view["state_since"] == "2026-10-25T10:10:00+09:00"
    assert {row["shift"] for row in seoul_view["capability"]} == {"day", "night"}
    assert seoul_view["windows"]["shift"]["start"] == "2026-10-25T08:00:00+09:00"
    open_seoul = {record.window: record.start for record in processor.open_window_records(states["acme/S01"])}
    assert open_seoul == {
        "hour": "2026-10-25T15:00:00+09:00",
        "shift": "2026-10-25T08:00:00+09:00",
        "day": "2026-10-25T08:00:00+09:00",
    }


def test_a_site_without_a_calendar_of_its_own_is_as_the_plant_without_sites() -> None:
    two = parse_plant(TWO_SITES, "two-sites.yaml")
    berlin_only = parse_plant(BERLIN_ONLY, "berlin.yaml")
    ours, _, _ = run(two)
    theirs, _, _ = run(berlin_only)
    berlin = [{**kpi, "config_version": None} for kpi in ours if kpi["machine"] == "B01"]
    assert berlin == [{**kpi, "config_version": None} for kpi in theirs if kpi["machine"] == "B01"]
    # Without per-site calendars the Seoul machine would get Berlin's shifts (the audit's defect).
    assert windows(theirs, "S01", "shift") == BERLIN_SHIFTS


def test_a_plant_without_sites_keeps_its_config_version() -> None:
    # Computed before plant files had sites: records of existing plants name the same configuration.
    assert parse_plant(BERLIN_ONLY, "berlin.yaml").version == "2321fa4e4ece"
    assert parse_plant(TWO_SITES, "two-sites.yaml").version != "2321fa4e4ece"


def test_analyze_writes_each_site_in_its_own_calendar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, source, out = tmp_path / "plant.yaml", tmp_path / "t.jsonl", tmp_path / "out"
    config.write_text(TWO_SITES)
    source.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in telemetry()))
    assert main(["analyze", str(source), "--config", str(config), "--out", str(out)]) == 0
    capsys.readouterr()
    kpis = [orjson.loads(line) for line in (out / "kpis.jsonl").read_bytes().splitlines()]
    closed = [kpi for kpi in kpis if kpi["complete"]]
    check_windows(closed)
    lines = [orjson.loads(line) for line in (out / "line_kpis.jsonl").read_bytes().splitlines()]
    seoul_line = {(line["window"], line["start"]) for line in lines if line["line"] == "S1"}
    assert ("shift", "2026-10-24T20:00:00+09:00") in seoul_line
    assert all(start.endswith("+09:00") for _, start in seoul_line)
    capability = orjson.loads((out / "capability.json").read_bytes())
    text = orjson.dumps(capability).decode()
    assert '"day"' in text or "|day" in text  # a Seoul shift name; Berlin has no "day" shift
    alerts = [orjson.loads(line) for line in (out / "alerts.jsonl").read_bytes().splitlines()]
    assert {a["started_at"] for a in alerts if a["kind"] == "machine_stopped" and a["machine"] == "S01"} == {
        "2026-10-25T10:00:00+09:00"
    }


@pytest.mark.parametrize(
    ("site", "expected"),
    [
        (
            "{tenant: acme, site: seoul, timezone: Asia/Soul}",
            "sites[0].timezone: unknown time zone 'Asia/Soul'",
        ),
        (
            "{tenant: acme, site: tokyo, timezone: Asia/Tokyo}",
            "sites[0] (acme/tokyo): no machine of the plant",
        ),
        (
            "{tenant: other, site: seoul, timezone: Asia/Seoul}",
            "sites[0] (other/seoul): no machine of the plant",
        ),
        ("{tenant: acme, site: seoul, day_start: '25:00'}", "sites[0].day_start: must be a local clock time"),
        (
            "{tenant: acme, site: seoul, shifts: [{name: a, start: '08:00', end: '20:00'},"
            " {name: a, start: '20:00', end: '08:00'}]}",
            "sites[0].shifts: shift names must be unique",
        ),
        (
            "{tenant: acme, site: seoul, shifts: [{name: a, start: '08:00', end: '20:00'},"
            " {name: b, start: '09:00', end: '10:00'}]}",
            "sites[0].shifts: shift 'b' lies entirely within shift 'a'",
        ),
        ("{tenant: acme, site: seoul, zone: Asia/Seoul}", "sites[0].zone: Extra inputs are not permitted"),
    ],
)
def test_a_bad_site_calendar_names_its_field(site: str, expected: str) -> None:
    text = BERLIN_ONLY + f"sites:\n  - {site}\n"
    with pytest.raises(ConfigError) as caught:
        parse_plant(text, "plant.yaml")
    assert expected in str(caught.value)


def test_a_site_listed_twice_is_refused() -> None:
    text = TWO_SITES + "  - {tenant: acme, site: seoul, timezone: Asia/Tokyo}\n"
    with pytest.raises(ConfigError, match=r"sites\[1\] \(acme/seoul\) repeats sites\[0\]"):
        parse_plant(text, "plant.yaml")


def test_fallbacks_take_the_plants_settings_field_by_field() -> None:
    text = BERLIN_ONLY + "day_start: '05:00'\nsites:\n  - {tenant: acme, site: seoul, timezone: Asia/Seoul}\n"
    plant = parse_plant(text, "plant.yaml")
    seoul = plant.site_calendar("acme", "seoul")
    assert (seoul.zone.key, [s.name for s in seoul.shifts], seoul.day_start.hour) == (
        "Asia/Seoul",
        ["early", "late", "night"],
        5,
    )
    berlin = plant.site_calendar("acme", "berlin")
    assert (berlin.zone.key, berlin.day_start.hour) == ("Europe/Berlin", 5)
    no_shifts = parse_plant(BERLIN_ONLY + "sites:\n  - {tenant: acme, site: seoul, shifts: []}\n", "p")
    assert PlantCalendar.for_site(no_shifts, "acme", "seoul").shifts == ()
    assert no_shifts.site_calendar("acme", "seoul").day_start.hour == 0


def test_the_simulator_stamps_and_schedules_each_site_by_its_calendar() -> None:
    plant = parse_plant(TWO_SITES, "two-sites.yaml")
    start = utc_ms("2026-10-24T19:00:00+00:00")
    sim = PlantSimulator(plant, seed=1, start_ms=start)
    stamped = PlantSimulator(plant, seed=1, start_ms=start, options=SimOptions(ts_format="rfc3339"))
    offsets = {(r["machine"], str(r["ts"])[-6:]) for r in stamped.events(start + 2 * HOUR_MS)}
    assert offsets == {("B01", "+02:00"), ("S01", "+09:00")}
    assert sim.zone_of("acme/S01").key == "Asia/Seoul" and sim.zone_of("acme/B01").key == "Europe/Berlin"
    seoul_only = parse_plant(SEOUL_ONLY, "seoul.yaml")
    site, alone = BreakSchedule(plant, "acme", "seoul"), BreakSchedule(seoul_only)
    probes = range(start, start + 48 * HOUR_MS, 60_000)
    assert [site.window_at(t) for t in probes] == [alone.window_at(t) for t in probes]
    assert any(site.window_at(t) is not None for t in probes)
