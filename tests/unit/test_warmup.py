"""The worker's kernel warm-up (service.warmup) runs the worker's paths on any valid plant, keeps
nothing, and never stops a worker: a failure is logged and the worker goes on without it."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from service import warmup
from service.plant_file import load_demo_plant, parse_plant

OPTIONS = {"max_payload_bytes": 1 << 20, "max_future_ms": 300_000, "anomaly_models": None}

# A user's plant: another zone, two tenants, no products or machine types.
USER_PLANT = """
timezone: America/Chicago
machines:
  - {tenant: north, site: s1, line: A, id: P1, ideal_cycle_s: 12.0}
  - {tenant: south, site: s9, line: B, id: P7, ideal_cycle_s: 3.5}
"""


def test_demo_plant_warm_up_applies_frames_runs_and_events() -> None:
    done = warmup.warm_up(load_demo_plant(), **OPTIONS, minutes=45.0)
    assert done.messages > 500
    again = warmup.warm_up(load_demo_plant(), **OPTIONS, minutes=45.0)
    assert again.compiled == 0  # everything the first one needed is compiled (or loaded) by now


def test_a_large_plant_warms_up_on_a_sample_of_its_machines() -> None:
    # The kernels are the same for every machine: simulating all of them cost ~0.075 s each.
    machines = "\n".join(
        f"  - {{tenant: t, site: s, line: L{index % 7}, id: M{index:03d}, ideal_cycle_s: 6.0"
        + (", type: press}" if index % 2 else "}")
        for index in range(120)
    )
    plant = parse_plant(f"timezone: Europe/Berlin\nmachines:\n{machines}\n", "large.yaml")
    sample = warmup._sample(plant)
    assert [machine.id for machine in sample.machines] == ["M000", "M001", "M002", "M003"]
    typed = parse_plant(
        f"timezone: Europe/Berlin\nmachines:\n{machines.replace('type: press', 'type: lathe', 1)}\n", "t"
    )
    assert [machine.type for machine in warmup._sample(typed).machines] == [None, "lathe", None, "press"]
    assert sample.timezone == plant.timezone
    assert warmup.warm_up(plant, **OPTIONS, minutes=5.0).messages < 400


def test_a_users_plant_warms_up() -> None:
    done = warmup.warm_up(parse_plant(USER_PLANT, "user.yaml"), **OPTIONS, minutes=10.0)
    assert done.messages > 0


# In a fresh process: after the warm-up, hours of the plant's own telemetry (its hall sensor too)
# call no kernel with a signature the warm-up did not (each would compile, or load, in a batch).
_COVERAGE = """
import sys, time, orjson
from models.numba_config import _KERNELS
from models.plant import PlantConfig
from service import warmup
from service.plant_file import load_demo_plant
from service.simulator import PlantSimulator
from streams.decode import Accepted
from streams.processing import Applied, TelemetryProcessor

data = load_demo_plant().model_dump()
data["monitoring"] = {"temperatures": {"ambient_signal": "hall_temp"}}
plant = PlantConfig.model_validate(data)
options = {"max_payload_bytes": 1 << 22, "max_future_ms": 300_000, "anomaly_models": None}
warmup.warm_up(plant, **options)
def signatures():
    return {(k.py_func.__module__, k.__name__, str(sig)) for k in _KERNELS for sig in k.signatures}
warmed = signatures()
processor = TelemetryProcessor(plant, **options)
now = int(time.time() * 1000)
states = {}
for offset, record in enumerate(PlantSimulator(plant, seed=7, start_ms=now - 2 * 3_600_000).events(now)):
    if record.get("kind") == "samples":
        first = record["signals"][0]
        hall = {"signal": "hall_temp", "unit": "degC", "ts": first["ts"], "values": [19.5] * len(first["ts"])}
        record["signals"] = [*record["signals"], hall]
    key = f"{record['tenant']}/{record['machine']}".encode()
    decoded = processor.decode(key, orjson.dumps(record), timestamp_ms=now)
    assert isinstance(decoded, Accepted), decoded
    if processor.is_samples(decoded):
        outcomes = processor.process_samples([(decoded, offset)], load_state=states.get, source="t:0")
    else:
        outcomes = [processor.process_decoded(decoded, load_state=states.get, source="t:0", offset=offset)]
    for outcome in outcomes:
        if isinstance(outcome, Applied):
            states[outcome.state.key] = outcome.state
judged = [s for state in states.values() for s in state.expected]
assert judged, "no temperature reached its expected level"
for missed in sorted(signatures() - warmed):
    print("missed", *missed)
"""


def test_after_the_warm_up_the_plants_telemetry_calls_no_new_kernel_signature() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _COVERAGE],
        check=False,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "missed" not in done.stdout, done.stdout


def test_a_failed_warm_up_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("simulated plant refused")

    monkeypatch.setattr(warmup, "PlantSimulator", broken)
    with caplog.at_level(logging.ERROR, logger="service.warmup"):
        assert warmup.warm_up_or_log(load_demo_plant(), **OPTIONS) is None
    assert "kernel warm-up failed" in caplog.text and "simulated plant refused" in caplog.text
