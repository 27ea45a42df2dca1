"""/metrics per machine: the six big losses, top losses, micro-stops and cycle-time figures."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from models.machine import MachineEngine
from models.plant import PlantConfig
from service.machine_collector import LABEL_VALUES, OTHER, MachineCollector
from service.metrics import build_registry
from streams.live import LiveMachines

SEOUL = ZoneInfo("Asia/Seoul")


def at(hh: int, mm: int = 0, ss: int = 0) -> int:
    return int(datetime(2026, 11, 25, hh, mm, ss, tzinfo=SEOUL).timestamp() * 1000)


def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    plant = PlantConfig.model_validate(
        {
            "timezone": "Asia/Seoul",
            "machines": [{"tenant": "acme", "site": "p1", "line": "L1", "id": "M01", "ideal_cycle_s": 10.0}],
            "micro_stop_s": 60,
            "state_timeout_s": 3600,
        }
    )
    engine, spec = MachineEngine(plant), plant.machines[0]
    state = engine.new_state(spec)
    engine.on_state(state, spec, at(6), "running", None)
    engine.on_state(state, spec, at(6, 10), "idle", "jam")  # 30 s: a small stop
    engine.on_state(state, spec, at(6, 10, 30), "running", None)
    engine.on_state(state, spec, at(6, 20), "down", "motor")  # 5 min: unplanned stop
    engine.on_state(state, spec, at(6, 25), "running", None)
    for seconds in range(1, 101):  # cycles of 1 s .. 100 s, one every 10 s from 06:30
        engine.on_cycle(state, spec, at(6, 30) + seconds * 10_000, float(seconds), "P1")
    engine.on_count(state, spec, at(6, 50), 100, 0, "P1", None)
    live = LiveMachines({machine.key for machine in plant.machines})
    live.update(state)
    registry, _ = build_registry(live, plant)
    samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            labels = frozenset(
                (k, v) for k, v in sample.labels.items() if k not in ("tenant", "site", "line")
            )
            samples[(sample.name, labels)] = sample.value
    return samples


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples[(name, frozenset({"machine": "M01", "window": "hour", **labels}.items()))]


def test_big_losses_top_losses_and_micro_stops() -> None:
    samples = scrape()
    assert value(samples, "linepulse_big_loss_seconds", loss="unplanned_stops") == 300.0
    assert value(samples, "linepulse_big_loss_seconds", loss="small_stops") == 30.0
    assert value(samples, "linepulse_micro_stops") == 1.0
    top = {"rank": "1", "big_loss": "unplanned_stops", "state": "down", "reason": "motor"}
    assert value(samples, "linepulse_top_loss_seconds", **top) == 300.0
    assert (
        value(
            samples,
            "linepulse_top_loss_seconds",
            rank="2",
            big_loss="small_stops",
            state="idle",
            reason="jam",
        )
        == 30.0
    )
    loss = {"category": "performance", "big_loss": "small_stops", "state": "idle", "reason": "jam"}
    assert value(samples, "linepulse_loss_seconds", **loss) == 30.0


def test_cycle_time_quantiles_per_product() -> None:
    samples = scrape()
    assert value(samples, "linepulse_window_cycles", product="P1") == 100.0
    assert value(samples, "linepulse_cycle_time_seconds", product="P1", stat="mean") == 50.5
    assert value(samples, "linepulse_cycle_time_seconds", product="P1", stat="ideal") == 10.0
    for stat, exact in (("p50", 50.0), ("p95", 95.0), ("p99", 99.0)):
        found = value(samples, "linepulse_cycle_time_seconds", product="P1", stat=stat)
        assert abs(found - exact) <= 0.011 * exact, (stat, found)  # the sketch is within 1 % (+ rank)


def test_fully_productive_seconds_are_the_oee_times_planned_busy_time() -> None:
    # The line's OEE rule sums this series over the planned busy time (docker/prometheus/rules), as
    # the line view (models/line.py) sums OEE x PBT: with performance capped, not ideal x quality.
    samples = scrape()
    oee = value(samples, "linepulse_oee_ratio")
    planned = value(samples, "linepulse_window_seconds", category="planned_busy")
    assert 0 < oee < 1 and planned > 0
    assert value(samples, "linepulse_window_seconds", category="fully_productive") == oee * planned


def test_reasons_and_products_from_telemetry_stay_bounded_and_sum_up() -> None:
    # A gateway sending free text (a new reason and product every stop and cycle) grew the series
    # without bound: 600 messages gave 1,575 cycle-time series. Now the 20 largest per machine,
    # window and metric have their own, and the rest are summed as "other".
    plant = PlantConfig.model_validate(
        {
            "timezone": "Asia/Seoul",
            "machines": [{"tenant": "acme", "site": "p1", "line": "L1", "id": "M01", "ideal_cycle_s": 10.0}],
            "state_timeout_s": 3600,
        }
    )
    engine, spec = MachineEngine(plant), plant.machines[0]
    state = engine.new_state(spec)
    t = at(6)
    for i in range(60):
        engine.on_state(state, spec, t, "running", None)
        engine.on_cycle(state, spec, t + 5_000, 5.0, f"P{i:02d}")
        engine.on_count(state, spec, t + 6_000, 1, 1, f"P{i:02d}", f"scrap{i:02d}")
        engine.on_state(state, spec, t + 10_000, "down", f"r{i:02d}")
        t += 10_000 + (i + 1) * 1_000  # stops of 1 s, 2 s, ... 60 s: distinct sizes
    engine.on_state(state, spec, t, "running", None)
    live = LiveMachines({machine.key for machine in plant.machines})
    live.update(state)
    registry, _ = build_registry(live, plant)
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}

    def hour(name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for sample in families[name].samples:
            if sample.labels["window"] == "hour" and sample.name == name:
                out[sample.labels[label]] = out.get(sample.labels[label], 0.0) + sample.value
        return out

    losses = hour("linepulse_loss_seconds", "reason")
    assert len(losses) == LABEL_VALUES + 1 and OTHER in losses
    assert losses["r59"] == 60.0  # the largest keep their own series
    assert sum(losses.values()) == sum(i + 1 for i in range(60))  # nothing lost, the rest summed
    cycles = hour("linepulse_window_cycles", "product")
    assert len(cycles) == LABEL_VALUES + 1 and sum(cycles.values()) == 60
    quantiles = {s.labels["product"] for s in families["linepulse_cycle_time_seconds"].samples}
    assert len(quantiles) == LABEL_VALUES and OTHER not in quantiles  # quantiles do not add up
    scrap = hour("linepulse_window_scrap_units", "reason")
    assert len(scrap) == LABEL_VALUES + 1 and sum(scrap.values()) == 60


def test_scheduled_follows_each_sites_shifts_days_off_and_holidays_by_the_clock() -> None:
    """What the silence and shift-OEE rules need to leave a machine switched off for the weekend be."""
    plant = PlantConfig.model_validate(
        {
            "timezone": "Asia/Seoul",
            # p1 works weekdays 06:00-14:00 (Seoul), not on 2026-11-26; p2 (Berlin) has no shifts.
            "shifts": [
                {"name": "day", "start": "06:00", "end": "14:00", "days": ["mon", "tue", "wed", "thu", "fri"]}
            ],
            "holidays": ["2026-11-26"],
            "sites": [{"tenant": "acme", "site": "p2", "timezone": "Europe/Berlin", "shifts": []}],
            "machines": [
                {"tenant": "acme", "site": "p1", "line": "L1", "id": "M01", "ideal_cycle_s": 10.0},
                {"tenant": "acme", "site": "p2", "line": "L9", "id": "M09", "ideal_cycle_s": 10.0},
            ],
        }
    )
    engine = MachineEngine(plant)
    live = LiveMachines({machine.key for machine in plant.machines})
    for spec in plant.machines:
        live.update(engine.new_state(spec))
    now_s = 0.0
    registry = CollectorRegistry()
    registry.register(MachineCollector(live, plant, clock=lambda: now_s))

    def scheduled() -> dict[str, float]:
        families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
        return {s.labels["machine"]: s.value for s in families["linepulse_scheduled"].samples}

    def seoul(day: int, hh: int) -> float:
        return datetime(2026, 11, day, hh, tzinfo=SEOUL).timestamp()

    for moment, expected in [
        (seoul(25, 7), 1.0),  # Wednesday, in the day shift
        (seoul(25, 15), 0.0),  # after it
        (seoul(26, 7), 0.0),  # Thursday: a holiday
        (seoul(27, 7), 1.0),  # Friday
        (seoul(28, 7), 0.0),  # Saturday: no shift starts
    ]:
        now_s = moment
        assert scheduled() == {"M01": expected, "M09": 1.0}, datetime.fromtimestamp(moment, SEOUL)
