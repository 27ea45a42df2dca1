"""/metrics per machine: the six big losses, top losses, micro-stops and cycle-time figures."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from models.machine import MachineEngine
from models.plant import PlantConfig
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
    live = LiveMachines()
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
