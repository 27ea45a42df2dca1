"""What the live views (/metrics, /api/machines, /status) show: only configured machines, and
staleness on each tenant's stream clock (:mod:`service.web.staleness`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import numpy as np

from models import alert_book
from models.accounting import EngineOutput
from models.machine import MachineEngine
from models.machine_state import MachineState
from models.plant import PlantConfig
from service.metrics import build_registry
from service.web.routes import machine_view
from service.web.staleness import Silence, silences
from streams.app import LinepulseStream
from streams.live import LiveMachines, show_recovered_machines
from streams.processing import TelemetryProcessor, encode_state
from streams.state_table import StateTable
from tests.unit.faust_tables import memory_table, write_acknowledged

NOW_MS = 1_795_400_000_000
DAY_MS = 86_400_000
PLANT = PlantConfig.model_validate(
    {
        "timezone": "Asia/Seoul",
        "state_timeout_s": 60,
        "machines": [
            {"tenant": tenant, "site": "p1", "line": "L1", "id": machine, "ideal_cycle_s": 10.0}
            for tenant in ("acme", "hist")
            for machine in ("M01", "M02")
        ],
    }
)
ENGINE = MachineEngine(PLANT)


class Clock:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> float:
        return self.now_ms / 1000.0


def running(tenant: str, machine: str, at_ms: int, state: MachineState | None = None) -> MachineState:
    spec = PLANT.machine(tenant, machine)
    assert spec is not None
    state = state or ENGINE.new_state(spec)
    ENGINE.on_state(state, spec, at_ms, "running", None)
    return state


def removed(at_ms: int) -> MachineState:
    other = PlantConfig.model_validate(
        {**PLANT.model_dump(), "machines": [{"tenant": "gone", "site": "p1", "line": "L1", "id": "M09"}]}
    )
    state = MachineEngine(other).new_state(other.machines[0])
    MachineEngine(other).on_state(state, other.machines[0], at_ms, "running", None)
    return state


def live_of(clock: Clock) -> LiveMachines:
    return LiveMachines({machine.key for machine in PLANT.machines}, clock=clock)


def test_a_machine_not_in_the_plant_is_neither_recovered_nor_updated() -> None:
    live = live_of(Clock(NOW_MS))
    assert not live.show_recovered(removed(NOW_MS))
    live.update(removed(NOW_MS))
    assert live.show_recovered(running("acme", "M01", NOW_MS))
    assert [state.key for state in live] == ["acme/M01"] and "gone/M09" not in live


def test_a_recovered_state_does_not_replace_a_newer_one() -> None:
    live = live_of(Clock(NOW_MS))
    newer = running("acme", "M01", NOW_MS)
    live.update(newer)
    assert live.show_recovered(running("acme", "M01", NOW_MS - DAY_MS))
    [shown] = live
    assert shown is newer


def stale(live: LiveMachines, now_ms: int) -> dict[str, bool]:
    shown = list(live)
    silent = silences(live, shown, now_ms, PLANT.state_timeout_s)
    return {state.key: of_state.stale for state, of_state in zip(shown, silent, strict=True)}


def test_a_whole_plant_that_goes_silent_turns_stale_on_the_wall_clock() -> None:
    # Measured against the newest event of the shown machines, nothing was ever stale here.
    clock = Clock(NOW_MS)
    live = live_of(clock)
    live.update(running("acme", "M01", NOW_MS - 1_000))
    live.update(running("acme", "M02", NOW_MS - 2_000))
    assert stale(live, NOW_MS + 30_000) == {"acme/M01": False, "acme/M02": False}
    assert stale(live, NOW_MS + 62_000) == {"acme/M01": True, "acme/M02": True}
    [first, _] = silences(live, list(live), NOW_MS + 62_000, 60)
    # The newest event's 1 s delay on arrival is transport, not silence.
    assert first.silent_s == 62.0 and first.received_ago_s == 62.0


def test_a_replay_far_behind_the_wall_clock_is_stale_only_where_history_is_silent() -> None:
    clock = Clock(NOW_MS)
    live = live_of(clock)
    old = NOW_MS - 30 * DAY_MS
    m02 = running("hist", "M02", old)
    live.update(m02)
    m01 = running("hist", "M01", old)
    for minute in range(1, 6):  # five minutes of history in five seconds of wall clock
        clock.now_ms += 1_000
        live.update(running("hist", "M01", old + minute * 60_000, m01))
    assert stale(live, clock.now_ms) == {"hist/M01": False, "hist/M02": True}
    silent = silences(live, list(live), clock.now_ms, 60)
    assert [q.silent_s for q in silent] == [0.0, 300.0]
    # The replay ended: no data arrives any more, so after the timeout on the wall clock all are stale.
    assert stale(live, clock.now_ms + 61_000) == {"hist/M01": True, "hist/M02": True}


def test_each_tenant_has_its_own_stream_clock() -> None:
    # A live tenant next to a replayed one: the replay is not stale for being old.
    clock = Clock(NOW_MS)
    live = live_of(clock)
    live.update(running("acme", "M01", NOW_MS))
    live.update(running("hist", "M01", NOW_MS - 30 * DAY_MS))
    assert stale(live, NOW_MS + 1_000) == {"acme/M01": False, "hist/M01": False}


def test_a_tick_is_no_data_and_recovered_states_go_by_the_wall_clock() -> None:
    clock = Clock(NOW_MS)
    live = live_of(clock)
    state = running("acme", "M01", NOW_MS - DAY_MS)
    live.show_recovered(state)  # nothing received since the start: no lag to go by
    [recovered] = silences(live, list(live), NOW_MS, 60)
    assert recovered.stale and recovered.received_ago_s is None
    m02 = running("acme", "M02", NOW_MS)
    live.update(m02)
    clock.now_ms += 50_000
    live.update(m02)  # written again by a silence tick: its event time did not move
    receipt = live.receipt("acme/M02")
    assert receipt is not None and receipt.received_ms == NOW_MS


def exposed_counters(live: LiveMachines) -> dict[str, float]:
    """The per-machine counter samples of /metrics, by family (acme/M01's only)."""
    registry, _ = build_registry(live, PLANT)
    samples = {}
    for family in registry.collect():
        if family.type != "counter":
            continue
        for sample in family.samples:
            if sample.labels.get("machine") == "M01" and sample.name.endswith("_total"):
                samples[sample.name + sample.labels.get("signal", "")] = sample.value
    return samples


def test_counters_are_those_of_the_written_state_not_of_the_batch_being_applied() -> None:
    """The next batch changes the working copy of a state before its changelog write is
    acknowledged, and a kill -9 then restores the state before it: a counter shown from the working
    copy would go back after the restart, a reset to rate()."""
    live = live_of(Clock(NOW_MS))
    spec = PLANT.machine("acme", "M01")
    assert spec is not None
    state = running("acme", "M01", NOW_MS - 120_000)
    readings = (np.arange(5, dtype=np.int64) * 1000 + NOW_MS - 60_000, np.full(5, 1.5))
    ENGINE.on_count(state, spec, NOW_MS - 60_000, 100, 2, None, None)
    ENGINE.on_samples(state, spec, NOW_MS - 60_000, [("vibration", *readings)])
    live.update(state)  # written: its changelog record acknowledged
    written = exposed_counters(live)
    assert written["linepulse_good_units_total"] == 100
    assert written["linepulse_scrap_units_total"] == 2
    assert written["linepulse_signal_readings_totalvibration"] == 5

    # The next batch, applied to the same object, not yet written: nothing counted goes up yet...
    ENGINE.on_count(state, spec, NOW_MS - 30_000, 7, 1, None, None)
    ENGINE.on_samples(state, spec, NOW_MS - 30_000, [("vibration", readings[0] + 30_000, readings[1])])
    ENGINE.on_samples(state, spec, NOW_MS - 30_000, [("pressure", readings[0] + 30_000, readings[1])])
    assert state.totals.good == 107
    assert exposed_counters(live) == written
    [view] = [live.counters(state.key).totals.to_dict()]
    assert (view["good"], view["scrap"]) == (100, 2)
    processor = TelemetryProcessor(PLANT, max_payload_bytes=1 << 20, max_future_ms=3_600_000)
    stream = cast(LinepulseStream, SimpleNamespace(processor=processor))
    silent = Silence(silent_s=0.0, received_ago_s=0.0, stale=False)
    api = machine_view(stream, state, silent, live.counters(state.key))  # /api/machines
    assert (api["totals"]["good"], api["signals"]["vibration"]["readings"]) == (100, 5)
    assert api["signals"]["pressure"]["readings"] is None  # first in the batch: counted once written

    # ...until it is written.
    live.update(state)
    assert exposed_counters(live) == {
        **written,
        "linepulse_good_units_total": 107,
        "linepulse_scrap_units_total": 3,
        "linepulse_run_seconds_total": 90,
        "linepulse_signal_readings_totalvibration": 10,
        "linepulse_signal_readings_totalpressure": 5,
    }


def test_recovered_machines_are_shown_between_batches_from_what_the_changelog_has(tmp_path: Path) -> None:
    """After a restart a machine is shown once its first batch is written, or by the worker's 5 s
    timer. The timer ran while a batch waited for its changelog acknowledgements, and showed the
    batch's working copy (and a machine first seen in it), ahead of the changelog: a kill -9 then
    set the counters back, a reset to rate()."""
    spec = PLANT.machine("acme", "M01")
    assert spec is not None
    recovered = running("acme", "M01", NOW_MS - 120_000)
    ENGINE.on_count(recovered, spec, NOW_MS - 60_000, 100, 0, None, None)
    with memory_table(tmp_path, "recovered", partitions=1) as store:
        store.data[b"acme/M01"] = encode_state(recovered)  # what the restart recovered
        table, live, applying = StateTable(store), live_of(Clock(NOW_MS)), asyncio.Lock()

        async def batch_then_timer() -> list[str]:
            async with applying:  # a batch: applied and staged, waiting for its acknowledgements
                state = table.load("acme/M01")
                assert state is not None
                ENGINE.on_count(state, spec, NOW_MS - 30_000, 250, 0, None, None)
                table.stage(state, 0)
                table.stage(running("acme", "M02", NOW_MS - 20_000), 0)  # first seen in the batch
                timer = asyncio.ensure_future(show_recovered_machines(table, live, applying, lambda: True))
                await asyncio.sleep(0.01)
                assert not timer.done() and len(live) == 0
                shown_during_batch = live.counters("acme/M01") if "acme/M01" in live else None
                write_acknowledged(table)
            assert shown_during_batch is None
            return await timer

        assert asyncio.get_event_loop().run_until_complete(batch_then_timer()) == []
        assert live.counters("acme/M01").totals.good == 350  # as written, after the batch
        assert "acme/M02" in live

        # A rebalance begins while a batch holds the lock (ready when the timer fired, not once it
        # gets the lock): the table holds revoked machines or is being recovered, nothing is shown.
        rebalanced, ready = live_of(Clock(NOW_MS)), [True]

        async def rebalance_during_batch() -> list[str]:
            async with applying:
                timer = asyncio.ensure_future(
                    show_recovered_machines(table, rebalanced, applying, lambda: ready[0])
                )
                await asyncio.sleep(0.01)
                ready[0] = False
            return await timer

        assert asyncio.get_event_loop().run_until_complete(rebalance_during_batch()) == []
        assert len(rebalanced) == 0


def test_each_open_alert_is_its_own_series_by_subject() -> None:
    """Two drifting signals of a machine were one series (value 2) of one Prometheus alert already
    firing, so the second drift reached nobody; each is now a series, an alert, a notification. The
    subject leaves products out (they come from telemetry: lot numbers too), and an OEE verdict is
    about the machine, whatever its shift."""
    live = live_of(Clock(NOW_MS))
    state = running("acme", "M01", NOW_MS - 60_000)
    out = EngineOutput()
    for key, kind, subject in [
        ("drift/vibration", "drift", "vibration"),
        ("drift/oil_temp", "drift", "oil_temp"),
        ("spc/bore@LOT1", "spc", "bore@LOT1"),
        ("quality_out_of_spec/bore|LOT1", "quality_out_of_spec", "bore|LOT1"),
        ("quality_out_of_spec/bore|LOT2", "quality_out_of_spec", "bore|LOT2"),
        ("oee_low", "oee_low", "day"),
    ]:
        alert_book.open_alert(
            state, out, key, kind=kind, subject=subject, severity="warning",
            at_ms=NOW_MS - 30_000, message=f"{subject}: {kind}", evidence={},
        )  # fmt: skip
    live.update(state)
    registry, _ = build_registry(live, PLANT)
    [family] = [family for family in registry.collect() if family.name == "linepulse_active_alerts"]
    assert sorted((s.labels["kind"], s.labels["subject"], s.value) for s in family.samples) == [
        ("drift", "oil_temp", 1.0),
        ("drift", "vibration", 1.0),
        ("oee_low", "M01", 1.0),
        ("quality_out_of_spec", "bore", 2.0),
        ("spc", "bore", 1.0),
    ]
