"""The worker's kernel warm-up (service.warmup) runs the worker's paths on any valid plant, keeps
nothing, and never stops a worker: a failure is logged and the worker goes on without it."""

from __future__ import annotations

import logging

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


def test_a_failed_warm_up_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("simulated plant refused")

    monkeypatch.setattr(warmup, "PlantSimulator", broken)
    with caplog.at_level(logging.ERROR, logger="service.warmup"):
        assert warmup.warm_up_or_log(load_demo_plant(), **OPTIONS) is None
    assert "kernel warm-up failed" in caplog.text and "simulated plant refused" in caplog.text
