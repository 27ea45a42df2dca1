"""Capability per shift as it took place (the mentor's trend), next to the lifetime figures per shift name."""

from __future__ import annotations

import math
import statistics
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from models.capability_history import (
    CAPABILITY_SHIFT_ROWS,
    CAPABILITY_SHIFTS_KEPT,
    ShiftCapability,
    capability_by_shift,
)
from models.machine import MachineEngine
from models.machine_state import MachineState
from models.plant import PlantConfig
from service.capability_view import capability_by_shift_rows, capability_rows
from service.cli import main
from service.machine_collector import LABEL_VALUES
from service.metrics import build_registry
from streams.live import LiveMachines

SEOUL = ZoneInfo("Asia/Seoul")
SHIFTS = [
    {"name": "day", "start": "06:00", "end": "14:00"},
    {"name": "swing", "start": "14:00", "end": "22:00"},
    {"name": "night", "start": "22:00", "end": "06:00"},
]


def plant(shifts: list[dict[str, str]], capability_min_parts: int = 25) -> PlantConfig:
    return PlantConfig.model_validate(
        {
            "timezone": "Asia/Seoul",
            "shifts": shifts,
            "machines": [{"tenant": "acme", "site": "p1", "line": "L1", "id": "M01", "ideal_cycle_s": 10.0}],
            "monitoring": {"capability_min_parts": capability_min_parts},
        }
    )


def at(day: int, hour: int, minute: int = 0) -> int:
    return int(datetime(2026, 11, day, hour, minute, tzinfo=SEOUL).timestamp() * 1000)


def measure(engine: MachineEngine, state: MachineState, parts: list[tuple[int, float]]) -> None:
    spec = engine.plant.machines[0]
    for ts_ms, value in parts:
        engine.on_quality(state, spec, ts_ms, "bore", value, 9.0, 11.0, "P1")


def test_each_shift_that_took_place_has_its_own_row_and_the_lifetime_rows_stay() -> None:
    engine = MachineEngine(plant(SHIFTS))
    state = engine.new_state(engine.plant.machines[0])
    # Two day shifts with different levels and a swing shift between them: the trend a mentor sees.
    monday_day = [(at(23, 7, m), 10.0 + 0.01 * (m % 5)) for m in range(0, 50, 5)]
    monday_swing = [(at(23, 15, m), 10.3 + 0.01 * (m % 3)) for m in range(0, 30, 5)]
    tuesday_day = [(at(24, 8, m), 10.6 + 0.02 * (m % 4)) for m in range(0, 40, 5)]
    measure(engine, state, monday_day + monday_swing + tuesday_day)

    rows = capability_by_shift_rows(engine, state)
    assert [(row["shift"], row["shift_start"], row["n"]) for row in rows] == [
        ("day", "2026-11-23T06:00:00+09:00", 10),
        ("swing", "2026-11-23T14:00:00+09:00", 6),
        ("day", "2026-11-24T06:00:00+09:00", 8),
    ]
    for row, parts in zip(rows, (monday_day, monday_swing, tuesday_day), strict=True):
        values = [value for _, value in parts]
        assert row["mean"] == pytest.approx(statistics.fmean(values), rel=1e-12)
        assert row["sigma_overall"] == pytest.approx(statistics.stdev(values), rel=1e-9)
        assert (row["characteristic"], row["product"], row["lsl"], row["usl"]) == ("bore", "P1", 9.0, 11.0)
    # Per shift name over the machine's life: both day shifts together.
    lifetime = {row["shift"]: row for row in capability_rows(engine, state)}
    assert lifetime["day"]["n"] == 18 and lifetime["swing"]["n"] == 6
    days = [value for _, value in monday_day + tuesday_day]
    assert lifetime["day"]["mean"] == pytest.approx(statistics.fmean(days), rel=1e-12)


def test_only_the_newest_shifts_are_kept_and_the_lifetime_counts_every_part() -> None:
    engine = MachineEngine(plant(SHIFTS))
    state = engine.new_state(engine.plant.machines[0])
    days = CAPABILITY_SHIFTS_KEPT // 3 + 3
    parts = [(at(1 + day, hour, 30), 10.0 + 0.01 * hour) for day in range(days) for hour in (7, 15, 23)]
    measure(engine, state, parts)
    rows = capability_by_shift_rows(engine, state)
    assert len(rows) == CAPABILITY_SHIFTS_KEPT
    assert rows[-1]["shift_start"] == f"2026-11-{days:02d}T22:00:00+09:00"  # the newest night shift
    starts = [row["shift_start"] for row in rows]
    assert starts == sorted(starts)
    assert sum(row["n"] for row in capability_rows(engine, state)) == len(parts)
    # A part of a shift already dropped does not bring it back.
    measure(engine, state, [(at(1, 7, 45), 10.0)])
    assert len(capability_by_shift_rows(engine, state)) == CAPABILITY_SHIFTS_KEPT
    assert capability_by_shift_rows(engine, state)[0]["shift_start"] == starts[0]


def test_without_shifts_the_span_is_the_local_day() -> None:
    engine = MachineEngine(plant([]))
    state = engine.new_state(engine.plant.machines[0])
    measure(engine, state, [(at(23, 1), 10.0), (at(23, 23), 10.2), (at(24, 0, 30), 10.4)])
    rows = capability_by_shift_rows(engine, state)
    assert [(row["shift"], row["shift_start"], row["n"]) for row in rows] == [
        (None, "2026-11-23T00:00:00+09:00", 2),
        (None, "2026-11-24T00:00:00+09:00", 1),
    ]


def test_shift_capability_survives_the_state_round_trip_and_old_states_load() -> None:
    engine = MachineEngine(plant(SHIFTS))
    spec = engine.plant.machines[0]
    state = engine.new_state(spec)
    assert "capability_shifts" not in state.to_dict()  # no quality data: the state is as it was
    measure(engine, state, [(at(23, 7), 10.0), (at(23, 8), 10.1), (at(23, 15), 10.2)])
    stored: dict[str, Any] = orjson.loads(orjson.dumps(state.to_dict()))
    restored = MachineState.from_dict(stored)
    assert capability_by_shift_rows(engine, restored) == capability_by_shift_rows(engine, state)
    del stored["capability_shifts"]  # a state stored before shifts were kept
    old = MachineState.from_dict(stored)
    assert capability_by_shift_rows(engine, old) == []
    measure(engine, old, [(at(23, 16), 10.3)])
    assert [(row["shift"], row["n"]) for row in capability_by_shift_rows(engine, old)] == [("swing", 1)]


def test_analyze_writes_capability_by_shift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, source, out = tmp_path / "plant.yaml", tmp_path / "t.jsonl", tmp_path / "out"
    config.write_text(
        "timezone: Asia/Seoul\n"
        "shifts:\n"
        + "".join(f"  - {{name: {s['name']}, start: '{s['start']}', end: '{s['end']}'}}\n" for s in SHIFTS)
        + "machines:\n  - {tenant: acme, site: p1, line: L1, id: M01, ideal_cycle_s: 10}\n"
    )
    base = {"v": 1, "tenant": "acme", "site": "p1", "line": "L1", "machine": "M01", "kind": "quality"}
    records = [
        {**base, "ts": at(23, hour, 10), "characteristic": "bore", "value": value, "lsl": 9.0, "usl": 11.0}
        for hour, value in ((7, 10.0), (8, 10.2), (15, 10.4))
    ]
    source.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
    assert main(["analyze", str(source), "--config", str(config), "--out", str(out)]) == 0
    capsys.readouterr()
    by_shift = orjson.loads((out / "capability_by_shift.json").read_bytes())
    assert [(row["shift"], row["shift_start"], row["n"]) for row in by_shift["acme/M01"]] == [
        ("day", "2026-11-23T06:00:00+09:00", 2),
        ("swing", "2026-11-23T14:00:00+09:00", 1),
    ]


def _capability_samples(min_parts: int) -> tuple[dict[tuple[str, str | None, str | None], float], list[Any]]:
    """Monday's day shift measures 10 parts, its swing shift 6: the scrape's capability samples."""
    engine = MachineEngine(plant(SHIFTS, min_parts))
    state = engine.new_state(engine.plant.machines[0])
    measure(engine, state, [(at(23, 7, m), 10.0 + 0.1 * (m % 3)) for m in range(10)])
    measure(engine, state, [(at(23, 15, m), 10.5 + 0.2 * (m % 2)) for m in range(6)])
    live = LiveMachines({machine.key for machine in engine.plant.machines})
    live.update(state)
    registry, _ = build_registry(live, engine.plant)
    samples = {
        (sample.name, sample.labels.get("shift"), sample.labels.get("index")): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
        if sample.name.startswith("linepulse_capability")
    }
    return samples, capability_by_shift_rows(engine, state)


def test_metrics_give_the_newest_shift_of_each_characteristic() -> None:
    samples, (_, swing) = _capability_samples(min_parts=5)
    assert swing["shift"] == "swing" and swing["n"] == 6 and swing["cpk"] is not None
    assert samples == {
        ("linepulse_capability_parts", "swing", None): 6.0,
        **{("linepulse_capability", "swing", index): swing[index] for index in ("cp", "cpk", "pp", "ppk")},
    }


def test_a_shift_without_enough_parts_gives_no_indices_and_the_last_one_that_had_stays() -> None:
    """Two parts gave Cp 376 at every shift start, and the first part of a shift made the last
    shift's figures vanish: a shift gives indices from capability_min_parts parts on, and until
    the next one has that many the scrape keeps the last shift that had them."""
    samples, (day, swing) = _capability_samples(min_parts=8)
    assert (day["n"], swing["n"], swing["cpk"], swing["cp"]) == (10, 6, None, None)
    assert samples == {
        ("linepulse_capability_parts", "day", None): 10.0,
        **{("linepulse_capability", "day", index): day[index] for index in ("cp", "cpk", "pp", "ppk")},
    }
    samples, (day, swing) = _capability_samples(min_parts=25)  # the default: neither has enough
    assert day["cpk"] is None and swing["cpk"] is None and swing["mean"] is not None
    assert samples == {("linepulse_capability_parts", "swing", None): 6.0}


def test_a_machine_keeps_at_most_its_share_of_shifts_whatever_its_products() -> None:
    engine = MachineEngine(plant(SHIFTS))
    state = engine.new_state(engine.plant.machines[0])
    spec = engine.plant.machines[0]
    # 20 products, one part each in nine days' day shifts: 180 series-shifts, each series 9 (< 21).
    days = range(17, 26)
    for day in days:
        for index in range(20):
            engine.on_quality(state, spec, at(day, 7, index), "bore", 10.0, 9.0, 11.0, f"P{index}")
    rows = capability_by_shift_rows(engine, state)
    assert len(rows) == CAPABILITY_SHIFT_ROWS < 180
    # The oldest shift's rows went first: every row of the eight newest days is kept.
    kept_days = [row["shift_start"][:10] for row in rows]
    assert all(kept_days.count(f"2026-11-{day}") == 20 for day in days[1:])
    assert kept_days.count("2026-11-17") == CAPABILITY_SHIFT_ROWS - 160


def test_metrics_export_the_newest_row_of_every_series_among_many_shifts() -> None:
    """The scrape computes indices only for one shift of each series: it exports what the newest
    row with enough parts (else the newest) of each series in all the kept rows gives, busiest
    LABEL_VALUES first, ties included."""
    engine = MachineEngine(plant(SHIFTS, capability_min_parts=2))
    state = engine.new_state(engine.plant.machines[0])
    spec = engine.plant.machines[0]
    # 24 series (more than LABEL_VALUES), 7 days of three shifts each: 168 rows, the machine's cap.
    # Part counts repeat across series, so the busiest cut falls among ties.
    series = [(characteristic, product) for characteristic in ("bore", "od", "len") for product in range(8)]
    for day in range(7):
        for hour in (7, 15, 23):
            for index, (characteristic, product) in enumerate(series):
                for part in range(1 + (index + day + hour) % 3):
                    value = 10.0 + 0.01 * ((part * 7 + index + hour) % 11)
                    engine.on_quality(
                        state, spec, at(10 + day, hour, part), characteristic, value, 9.0, 11.0, f"P{product}"
                    )
    rows = capability_by_shift(state, 2)
    assert len(rows) == CAPABILITY_SHIFT_ROWS
    by_series: dict[tuple[str, str | None], list[ShiftCapability]] = {}
    for row in rows:  # oldest first per series
        by_series.setdefault((row.characteristic, row.product), []).append(row)
    shown = [
        next((row for row in reversed(kept) if row.capability.n >= 2), kept[-1])
        for kept in by_series.values()
    ]
    assert any(row is not kept[-1] for row, kept in zip(shown, by_series.values(), strict=True))
    busiest = sorted(shown, key=lambda row: (-row.capability.n, row.characteristic))
    expected: list[tuple[str, tuple[str, ...], float]] = []
    for row in busiest[:LABEL_VALUES]:
        labels = ("acme", "p1", "L1", "M01", row.characteristic, row.product or "-", row.shift or "-")
        expected.append(("linepulse_capability_parts", labels, float(row.capability.n)))
        expected += [
            ("linepulse_capability", (*labels, index), value)
            for index in ("cp", "cpk", "pp", "ppk")
            if (value := getattr(row.capability, index)) is not None and math.isfinite(value)
        ]
    live = LiveMachines({machine.key for machine in engine.plant.machines})
    live.update(state)
    registry, _ = build_registry(live, engine.plant)
    exported = [
        (sample.name, tuple(sample.labels.values()), sample.value)
        for family in registry.collect()
        if family.name.startswith("linepulse_capability")
        for sample in family.samples
    ]
    assert sorted(exported) == sorted(expected)
    assert len({labels[4:6] for name, labels, _ in expected if name.endswith("parts")}) == LABEL_VALUES
