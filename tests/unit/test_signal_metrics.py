"""A machine's sensor signals in /metrics, /api/machines and analyze's signals.json: the statistics
its state keeps, checked against numpy on the same readings."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from models import signal_stats
from models.machine import MachineEngine
from models.machine_state import MachineState
from models.plant import MachineSpec, PlantConfig
from service.cli import main
from service.machine_collector import SIGNAL_SERIES
from service.metrics import build_registry
from service.signal_view import signal_view
from streams.live import LiveMachines

SEOUL = ZoneInfo("Asia/Seoul")
START_MS = int(datetime(2026, 11, 25, 6, tzinfo=SEOUL).timestamp() * 1000)
PLANT = PlantConfig.model_validate(
    {
        "timezone": "Asia/Seoul",
        "machines": [{"tenant": "acme", "site": "p1", "line": "L1", "id": "M01", "ideal_cycle_s": 10.0}],
    }
)


def running_machine() -> tuple[MachineEngine, MachineSpec, MachineState]:
    engine, spec = MachineEngine(PLANT), PLANT.machines[0]
    state = engine.new_state(spec)
    engine.on_state(state, spec, START_MS, "running", None)
    return engine, spec, state


def readings(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    times = START_MS + 1_000 * np.arange(1, n + 1, dtype=np.int64)
    return times, np.random.default_rng(seed).normal(50.0, 5.0, n)


def ew_reference(values: np.ndarray) -> tuple[float, float]:
    alpha, mean, var = signal_stats.DEFAULT_ALPHA, float(values[0]), 0.0
    for x in values[1:]:
        d = float(x) - mean
        mean += alpha * d
        var = (1 - alpha) * (var + alpha * d * d)
    return mean, math.sqrt(var)


def scrape(state: MachineState) -> dict[tuple[str, str], float]:
    live = LiveMachines({machine.key for machine in PLANT.machines})
    live.update(state)
    registry, _ = build_registry(live, PLANT)
    return {
        (sample.name, sample.labels.get("signal", "")): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
        if sample.name.startswith("linepulse_signal_")
    }


def test_the_newest_reading_level_and_count_of_each_signal_are_exported() -> None:
    engine, spec, state = running_machine()
    force_t, force = readings(300, seed=1)
    temp_t, temp = readings(40, seed=2)
    engine.on_samples(state, spec, int(force_t[-1]), [("force", force_t[:100], force[:100])])
    engine.on_samples(
        state, spec, int(force_t[-1]), [("force", force_t[100:], force[100:]), ("temp", temp_t, temp)]
    )
    samples = scrape(state)
    for name, values in (("force", force), ("temp", temp)):
        mean, std = ew_reference(values)
        assert samples[("linepulse_signal_value", name)] == values[-1]
        assert samples[("linepulse_signal_readings_total", name)] == len(values)
        assert math.isclose(samples[("linepulse_signal_ew_mean", name)], mean, rel_tol=1e-9)
        assert math.isclose(samples[("linepulse_signal_ew_std", name)], std, rel_tol=1e-9)


def test_the_api_view_gives_every_statistic_in_site_time() -> None:
    engine, spec, state = running_machine()
    times, values = readings(120, seed=3)
    engine.on_samples(state, spec, int(times[-1]), [("spindle_temp", times, values)])
    view = signal_view(state, engine.calendar_for(state))
    assert list(view) == ["spindle_temp"]
    row = view["spindle_temp"]
    assert row["readings"] == 120 and row["last"] == values[-1]
    assert row["last_at"] == "2026-11-25T06:02:00+09:00"
    assert math.isclose(row["mean"], float(values.mean()), rel_tol=1e-12)
    assert math.isclose(row["std"], float(values.std(ddof=1)), rel_tol=1e-9)
    assert (row["min"], row["max"]) == (float(values.min()), float(values.max()))
    assert math.isclose(row["ew_mean"], ew_reference(values)[0], rel_tol=1e-9)


def test_one_reading_has_no_standard_deviation_yet() -> None:
    engine, spec, state = running_machine()
    engine.on_samples(
        state, spec, START_MS + 1_000, [("force", np.array([START_MS + 1_000]), np.array([7.5]))]
    )
    row = signal_view(state, engine.calendar_for(state))["force"]
    assert row["readings"] == 1 and row["std"] is None and row["ew_std"] == 0.0
    assert scrape(state)[("linepulse_signal_value", "force")] == 7.5


def test_a_signal_the_machine_stopped_sending_has_no_series_but_stays_in_the_api() -> None:
    engine, spec, state = running_machine()
    old_t, old = readings(10, seed=7)
    engine.on_samples(state, spec, int(old_t[-1]), [("old_probe", old_t, old)])
    # An hour later (past state_timeout_s, 30 min by default) the machine sends only its new sensor.
    new_t = old_t + 3_600_000
    engine.on_samples(state, spec, int(new_t[-1]), [("new_probe", new_t, old)])
    exported = {name for (metric, name) in scrape(state) if metric == "linepulse_signal_value"}
    assert exported == {"new_probe"}
    assert set(signal_view(state, engine.calendar_for(state))) == {"new_probe", "old_probe"}


def test_free_text_signal_names_get_at_most_the_busiest_series() -> None:
    engine, spec, state = running_machine()
    times, values = readings(3, seed=4)
    series = [(f"s{index:03d}", times, values) for index in range(SIGNAL_SERIES + 10)]
    series.append(("busy", *readings(30, seed=5)))
    engine.on_samples(state, spec, int(times[-1]), series)
    exported = {name for (metric, name) in scrape(state) if metric == "linepulse_signal_readings_total"}
    assert len(exported) == SIGNAL_SERIES and "busy" in exported
    assert len(signal_view(state, engine.calendar_for(state))) == SIGNAL_SERIES + 11


def test_analyze_writes_each_machines_signals_as_the_api_gives_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, source, out = tmp_path / "plant.yaml", tmp_path / "t.jsonl", tmp_path / "out"
    config.write_text(
        "timezone: Asia/Seoul\nmachines:\n"
        "  - {tenant: acme, site: p1, line: L1, id: M01, ideal_cycle_s: 10}\n"
    )
    base = {"v": 1, "tenant": "acme", "site": "p1", "line": "L1", "machine": "M01"}
    times, values = readings(60, seed=6)
    lines = [{**base, "ts": START_MS, "kind": "state", "state": "running"}]
    lines += [
        {**base, "ts": int(t), "kind": "sensor", "signal": "vibration", "value": float(v)}
        for t, v in zip(times, values, strict=True)
    ]
    source.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    assert main(["analyze", str(source), "--config", str(config), "--out", str(out)]) == 0
    capsys.readouterr()
    written = orjson.loads((out / "signals.json").read_bytes())
    engine, spec, state = running_machine()
    engine.on_samples(state, spec, int(times[-1]), [("vibration", times, values)])
    # One reading a line folds the moments one at a time, the engine here all in one batch: equal
    # up to rounding.
    expected = signal_view(state, engine.calendar_for(state))
    assert list(written) == ["acme/M01"] and list(written["acme/M01"]) == ["vibration"]
    got, want = written["acme/M01"]["vibration"], expected["vibration"]
    assert got.keys() == want.keys()
    for field, value in want.items():
        assert got[field] == (value if isinstance(value, str) else pytest.approx(value, rel=1e-12)), field
    assert written["acme/M01"]["vibration"]["readings"] == 60
