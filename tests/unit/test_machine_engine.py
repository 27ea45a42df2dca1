"""Hand-worked ISO 22400 cases through the machine engine (planned stop, no data, windows, alerts)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from models.cycle_stats import MAX_WINDOW_PRODUCTS, OTHER_PRODUCTS
from models.machine import EngineOutput, MachineEngine
from models.machine_state import MachineState
from models.monitoring_config import CACHE_LIMIT
from models.plant import MachineSpec, PlantConfig

SEOUL = ZoneInfo("Asia/Seoul")


def at(hh: int, mm: int = 0, ss: int = 0, day: int = 25) -> int:
    return int(datetime(2026, 11, day, hh, mm, ss, tzinfo=SEOUL).timestamp() * 1000)


@pytest.fixture
def plant() -> PlantConfig:
    return PlantConfig.model_validate(
        {
            "timezone": "Asia/Seoul",
            "shifts": [
                {"name": "day", "start": "06:00", "end": "14:00"},
                {"name": "swing", "start": "14:00", "end": "22:00"},
                {"name": "night", "start": "22:00", "end": "06:00"},
            ],
            "machines": [{"tenant": "acme", "site": "p1", "line": "L1", "id": "M01", "ideal_cycle_s": 12.0}],
            "losses": [{"state": "idle", "reason": "micro_stop", "category": "performance"}],
            "alerts": {"down_after_s": 600},
            "state_timeout_s": 3600,
        }
    )


@pytest.fixture
def engine(plant: PlantConfig) -> MachineEngine:
    return MachineEngine(plant)


@pytest.fixture
def spec(plant: PlantConfig) -> MachineSpec:
    return plant.machines[0]


@pytest.fixture
def state(engine: MachineEngine, spec: MachineSpec) -> MachineState:
    return engine.new_state(spec)


def closed_hour(outputs: list[EngineOutput]) -> list[dict[str, object]]:
    found = []
    for out in outputs:
        for closed in out.closed:
            if closed.window.kind == "hour":
                found.append({"start": closed.window.start_ms, "figures": closed.window.figures()})
    return found


def test_full_hour_running_at_ideal_speed(
    engine: MachineEngine, spec: MachineSpec, state: MachineState
) -> None:
    outs = [engine.on_state(state, spec, at(6), "running", None)]
    outs.append(engine.on_count(state, spec, at(6, 30), 250, 50, None, "burr"))
    outs.append(engine.on_state(state, spec, at(7), "running", None))
    [hour] = closed_hour(outs)
    figures = hour["figures"]
    assert hour["start"] == at(6)
    assert figures.planned_s == 3600 and figures.run_s == 3600  # type: ignore[attr-defined]
    assert figures.availability == 1.0  # type: ignore[attr-defined]
    assert figures.performance == pytest.approx(300 * 12 / 3600)  # type: ignore[attr-defined]
    assert figures.quality == pytest.approx(250 / 300)  # type: ignore[attr-defined]
    assert figures.oee == figures.availability * figures.performance * figures.quality  # type: ignore[attr-defined]


def test_planned_stop_leaves_planned_busy_time(
    engine: MachineEngine, spec: MachineSpec, state: MachineState
) -> None:
    outs = [
        engine.on_state(state, spec, at(8), "running", None),
        engine.on_state(state, spec, at(8, 15), "planned_stop", "break"),
        engine.on_state(state, spec, at(8, 30), "down", "jam"),
        engine.on_state(state, spec, at(8, 45), "running", None),
        engine.on_count(state, spec, at(8, 50), 60, 0, None, None),
        engine.on_state(state, spec, at(9), "running", None),
    ]
    [hour] = closed_hour(outs)
    figures = hour["figures"]
    assert figures.planned_stop_s == 900  # type: ignore[attr-defined]
    assert figures.planned_s == 2700  # type: ignore[attr-defined]
    assert figures.run_s == 1800  # type: ignore[attr-defined]
    assert figures.availability_loss_s == 900  # type: ignore[attr-defined]
    assert figures.availability == pytest.approx(1800 / 2700)  # type: ignore[attr-defined]
    assert figures.performance == pytest.approx(60 * 12 / 1800)  # type: ignore[attr-defined]
    assert figures.losses_s == {"down/jam": 900.0, "planned_stop/break": 900.0}  # type: ignore[attr-defined]
    # TEEP also counts the planned stop against the calendar: OEE x 2700 s / 3600 s.
    assert figures.teep == pytest.approx(figures.oee * 2700 / 3600)  # type: ignore[attr-defined]
    assert figures.failures == 1 and figures.mttr_s == 900  # type: ignore[attr-defined]


def test_time_without_data_is_unknown_not_running(
    engine: MachineEngine, spec: MachineSpec, state: MachineState
) -> None:
    # state_timeout_s is 3600 s: running is believed until 11:00, then nothing is known until 11:15.
    outs = [
        engine.on_state(state, spec, at(10), "running", None),
        engine.on_state(state, spec, at(11, 15), "running", None),
        engine.on_state(state, spec, at(12), "running", None),
    ]
    first, second = closed_hour(outs)
    assert first["figures"].run_s == 3600  # type: ignore[attr-defined]
    figures = second["figures"]
    assert figures.run_s == 2700  # type: ignore[attr-defined]
    assert figures.unknown_s == 900  # type: ignore[attr-defined]
    assert figures.coverage == pytest.approx(0.75)  # type: ignore[attr-defined]
    assert figures.availability == 1.0  # unknown time is not an availability loss  # type: ignore[attr-defined]


def test_nothing_produced_gives_null_quality_and_oee(
    engine: MachineEngine, spec: MachineSpec, state: MachineState
) -> None:
    outs = [engine.on_state(state, spec, at(6), "down", "tool_break")]
    for minute in range(5, 61, 5):
        outs.append(
            engine.on_state(state, spec, at(6, minute) if minute < 60 else at(7), "down", "tool_break")
        )
    [hour] = closed_hour(outs)
    figures = hour["figures"]
    assert figures.availability == 0.0  # type: ignore[attr-defined]
    assert figures.performance is None and figures.quality is None and figures.oee is None  # type: ignore[attr-defined]


def test_micro_stop_reason_is_a_performance_loss(
    engine: MachineEngine, spec: MachineSpec, state: MachineState
) -> None:
    outs = [
        engine.on_state(state, spec, at(12), "running", None),
        engine.on_state(state, spec, at(12, 50), "idle", "micro_stop"),
        engine.on_count(state, spec, at(12, 55), 250, 0, None, None),
        engine.on_state(state, spec, at(13), "running", None),
    ]
    [hour] = closed_hour(outs)
    figures = hour["figures"]
    assert figures.availability == 1.0  # type: ignore[attr-defined]
    assert figures.run_s == 3600  # type: ignore[attr-defined]
    assert figures.performance == pytest.approx(250 * 12 / 3600)  # type: ignore[attr-defined]
    assert figures.performance_loss_s == pytest.approx(3600 - 3000)  # type: ignore[attr-defined]


def test_state_splits_exactly_at_shift_and_day_boundaries(
    engine: MachineEngine, spec: MachineSpec, state: MachineState
) -> None:
    outs = [engine.on_state(state, spec, at(21, 30), "running", None)]
    for minute in (40, 50):
        outs.append(engine.on_state(state, spec, at(21, minute), "running", None))
    outs.append(engine.on_state(state, spec, at(22, 5), "running", None))
    shifts = [closed.window for out in outs for closed in out.closed if closed.window.kind == "shift"]
    assert [window.shift for window in shifts] == ["swing"]
    swing = shifts[0].figures()
    assert swing.run_s == 1800
    # 14:00-21:30 had no data at all: unknown, not running, and not silently dropped.
    assert swing.unknown_s == 7.5 * 3600
    assert swing.run_s + swing.unknown_s == swing.window_s == 8 * 3600
    assert swing.coverage == pytest.approx(1800 / (8 * 3600))
    assert state.windows["shift"].shift == "night"
    assert state.windows["shift"].figures().run_s == 300


def test_machine_stopped_alert_opens_once_and_resolves(
    engine: MachineEngine, spec: MachineSpec, state: MachineState
) -> None:
    changes = []
    changes += engine.on_state(state, spec, at(9), "down", "jam").alerts
    for minute in range(1, 30):
        changes += engine.on_state(state, spec, at(9, minute), "down", "jam").alerts
    changes += engine.on_state(state, spec, at(9, 30), "running", None).alerts
    assert [(change.alert.kind, change.status) for change in changes] == [
        ("machine_stopped", "open"),
        ("machine_stopped", "resolved"),
    ]
    assert changes[0].alert.id == changes[1].alert.id
    assert changes[0].alert.severity == "critical"
    assert changes[0].alert.evidence["reason"] == "jam"


def test_state_round_trips_through_json(
    engine: MachineEngine, spec: MachineSpec, state: MachineState
) -> None:
    import numpy as np

    engine.on_state(state, spec, at(6), "running", None)
    engine.on_count(state, spec, at(6, 1), 3, 1, None, "burr")
    engine.on_samples(state, spec, at(6, 2), [("temp", np.array([at(6, 2)], np.int64), np.array([41.5]))])
    engine.on_quality(state, spec, at(6, 3), "diameter", 10.9, 9.5, 10.5)
    restored = MachineState.from_dict(state.to_dict())
    assert restored.to_dict() == state.to_dict()


def test_breakdowns_give_mtbf_mttr_and_teep(
    engine: MachineEngine, spec: MachineSpec, state: MachineState
) -> None:
    outs = [
        engine.on_state(state, spec, at(14), "running", None),
        engine.on_state(state, spec, at(14, 10), "down", "jam"),
        engine.on_state(state, spec, at(14, 15), "down", "electrical"),  # same breakdown, new reason
        engine.on_state(state, spec, at(14, 20), "running", None),
        engine.on_state(state, spec, at(14, 30), "setup", "changeover"),
        engine.on_state(state, spec, at(14, 40), "running", None),
        engine.on_state(state, spec, at(14, 50), "down", "jam"),
        engine.on_count(state, spec, at(14, 55), 90, 10, None, "burr"),
        engine.on_state(state, spec, at(15), "running", None),
    ]
    [hour] = closed_hour(outs)
    figures = hour["figures"]
    assert figures.failures == 2  # type: ignore[attr-defined]
    assert figures.run_s == 30 * 60  # type: ignore[attr-defined]
    assert figures.mtbf_s == 30 * 60 / 2  # type: ignore[attr-defined]
    assert figures.mttr_s == 20 * 60 / 2  # 10 min + 10 min down  # type: ignore[attr-defined]
    assert figures.setup_ratio == pytest.approx(600 / 3600)  # type: ignore[attr-defined]
    assert figures.scrap_ratio == pytest.approx(0.1)  # type: ignore[attr-defined]
    assert figures.throughput_per_h == pytest.approx(90 / 0.5)  # type: ignore[attr-defined]
    assert figures.teep == pytest.approx(figures.oee * 3600 / 3600)  # type: ignore[attr-defined]


def test_cycle_times_per_product_with_quantiles_and_speed_loss(
    engine: MachineEngine, spec: MachineSpec, state: MachineState
) -> None:
    import numpy as np

    engine.on_state(state, spec, at(16), "running", None)
    seconds = [12.0, 12.5, 13.0, 12.2, 15.0, 12.1, 12.4, 12.9, 12.3, 20.0]
    for index, value in enumerate(seconds):
        engine.on_cycle(state, spec, at(16, 1, index), value, None)
    engine.on_cycle(state, spec, at(16, 2), 30.0, "unknown-product")
    restored = MachineState.from_dict(state.to_dict())  # through the table's JSON, as after a restart
    outs = [engine.on_state(restored, spec, at(17), "running", None)]
    [hour] = [closed.window for out in outs for closed in out.closed if closed.window.kind == "hour"]
    from streams.records import kpi_record

    record = kpi_record(spec, hour, engine.calendar, "test")
    default = record.cycle_time["-"]
    assert default["count"] == 10
    assert default["mean_s"] == pytest.approx(np.mean(seconds))
    assert default["std_s"] == pytest.approx(np.std(seconds, ddof=1))
    for q, name in ((0.5, "p50_s"), (0.95, "p95_s"), (0.99, "p99_s")):
        truth = float(np.quantile(seconds, q, method="lower"))
        assert abs(default[name] - truth) <= 0.01 * truth  # type: ignore[operator]
    assert default["ideal_s"] == 12.0
    assert default["speed_loss_s"] == pytest.approx(sum(seconds) - 12.0 * 10)
    # A product without its own ideal cycle uses the machine's default ideal cycle.
    assert record.cycle_time["unknown-product"]["count"] == 1
    assert record.cycle_time["unknown-product"]["speed_loss_s"] == pytest.approx(18.0)
    assert record.cycles == 11


def test_names_minted_by_a_producer_do_not_grow_the_engine_caches_without_bound(
    engine: MachineEngine, spec: MachineSpec, state: MachineState
) -> None:
    engine.on_state(state, spec, at(9), "running", None)
    times = np.array([at(9, 30)], dtype=np.int64)
    for i in range(CACHE_LIMIT + 500):
        engine.on_samples(state, spec, at(9, 30), [(f"sensor_{i}", times, np.array([1.0]))])
        engine.on_state(state, spec, at(9, 30), "idle", f"reason_{i}")
    caches = (engine._series._tunings, engine._stops._categories, engine.plant.monitoring._cache)
    assert all(0 < len(cache) <= CACHE_LIMIT for cache in caches)
    # The machine state itself keeps every signal's statistics: that is telemetry, not a cache.
    assert len(state.signals) == CACHE_LIMIT + 500


def test_a_window_keeps_its_first_products_apart_and_the_rest_together(
    engine: MachineEngine, spec: MachineSpec, state: MachineState
) -> None:
    """A gateway sending lot numbers as products made a day's KPI record grow by ~170 bytes a lot,
    past what the broker takes (the worker then retried it for ever, every machine stalled): a
    window keeps MAX_WINDOW_PRODUCTS products apart and the rest under OTHER_PRODUCTS, its cycle
    count and mean whole."""
    from streams.records import kpi_record

    lots = MAX_WINDOW_PRODUCTS + 200
    engine.on_state(state, spec, at(16), "running", None)
    for index in range(lots):
        engine.on_cycle(state, spec, at(16, 1) + index * 10_000, 12.0 + index % 3, f"LOT{index}")
    restored = MachineState.from_dict(state.to_dict())  # the bound holds across a restart too
    engine.on_cycle(restored, spec, at(16, 50), 12.0, "LOT-after-restart")
    outs = [engine.on_state(restored, spec, at(17), "running", None)]
    [hour] = [closed.window for out in outs for closed in out.closed if closed.window.kind == "hour"]
    record = kpi_record(spec, hour, engine.calendar, "test")
    named = [product for product in record.cycle_time if product != OTHER_PRODUCTS]
    assert set(named) == {f"LOT{index}" for index in range(MAX_WINDOW_PRODUCTS)}, "the first ones"
    rest = record.cycle_time[OTHER_PRODUCTS]
    assert rest["count"] == lots - MAX_WINDOW_PRODUCTS + 1 and rest["ideal_s"] is None
    assert record.cycles == lots + 1
    assert sum(figures["count"] or 0 for figures in record.cycle_time.values()) == lots + 1
    assert len(record.model_dump_json()) < 20_000


def test_merged_windows_keep_the_product_bound() -> None:
    from models.timemodel import WindowAccumulator

    first = WindowAccumulator(kind="hour", shift=None, start_ms=0, end_ms=3_600_000)
    second = WindowAccumulator(kind="hour", shift=None, start_ms=3_600_000, end_ms=7_200_000)
    for index in range(MAX_WINDOW_PRODUCTS):
        first.add_cycle(10.0, f"A{index}", 10.0)
        second.add_cycle(20.0, f"B{index}", 20.0)
    first.merge(second)
    assert len(first.cycle_products) == MAX_WINDOW_PRODUCTS + 1
    assert first.cycle_products[OTHER_PRODUCTS].count == MAX_WINDOW_PRODUCTS
    assert first.cycles == 2 * MAX_WINDOW_PRODUCTS
    assert second.cycle_products["B0"].count == 1, "merging leaves the other window alone"
