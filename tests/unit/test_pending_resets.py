"""``baseline reset --at``: resets that wait in the machine's state for its telemetry to reach their time.

The worker's batches (a real Faust table on the memory store, as in test_batch.py) must apply them
exactly where ``analyze --baseline-reset`` does, whatever the batching; the Kafka side is
tests/integration/test_baseline_reset_at.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import orjson
import pytest

from models.machine_state import MachineState
from models.pending_resets import (
    MAX_PENDING_RESETS,
    PendingReset,
    TooManyPendingResets,
    is_due,
    schedule,
    take_due,
)
from models.plant import PlantConfig
from service.analyze import analyze_file
from service.baseline import parse_scheduled_reset
from service.cli import main
from service.settings import load_settings
from service.web.routes import machine_view
from service.web.staleness import Silence
from streams.app import LinepulseStream
from streams.batch import BatchApplier
from streams.decode import Rejection
from streams.live import Counters
from streams.processing import Applied, TelemetryProcessor, decode_state, encode_state
from streams.records import record_bytes
from streams.state_table import StateTable
from tests.unit.faust_tables import memory_table, write_acknowledged
from tests.unit.test_baseline_reset import SIGNAL, T0, _batch, _command, _telemetry_file
from tests.unit.test_stream_time_per_tenant import messages

KEY = b"acme/M01"
RESET_MS = T0 + 1_200_000  # the last event time of message 120 (batch 119) exactly
LATER_MS = T0 + 3_000_500  # inside message 301's readings


@pytest.fixture
def plant() -> PlantConfig:
    return PlantConfig.model_validate(
        {
            "timezone": "UTC",
            "machines": [
                {"tenant": "acme", "site": "p1", "line": "L1", "id": "M01", "ideal_cycle_s": 10},
                {"tenant": "acme", "site": "p1", "line": "L1", "id": "M02", "ideal_cycle_s": 10},
            ],
            "monitoring": {"signals": {"baseline_n": 300, "settle_s": 0}},
        }
    )


@pytest.fixture
def processor(plant: PlantConfig) -> TelemetryProcessor:
    return TelemetryProcessor(plant, max_payload_bytes=1 << 20, max_future_ms=300_000)


@pytest.fixture
def table(tmp_path: Path) -> Iterator[Any]:
    with memory_table(tmp_path, "pending-resets-test", partitions=4) as table:
        yield table


def test_the_rule_keeps_resets_in_order_and_bounded() -> None:
    pending: list[PendingReset] = []
    for at_ms, name in [(30, "c"), (10, "a"), (30, "d"), (20, "b"), (10, "a2")]:
        schedule(pending, PendingReset(at_ms, name=name))
    assert [r.name for r in pending] == ["a", "a2", "b", "c", "d"]  # equal times: as asked
    assert not is_due(10, None) and not is_due(10, 9) and is_due(10, 10) and is_due(10, 11)
    assert take_due(pending, 9) == []
    assert [r.name for r in take_due(pending, 20)] == ["a", "a2", "b"]
    assert [r.name for r in pending] == ["c", "d"]
    while len(pending) < MAX_PENDING_RESETS:
        schedule(pending, PendingReset(40))
    with pytest.raises(TooManyPendingResets, match=f"at most {MAX_PENDING_RESETS}"):
        schedule(pending, PendingReset(50))


def test_waiting_resets_survive_the_state_round_trip(
    processor: TelemetryProcessor, plant: PlantConfig
) -> None:
    state = processor.engine.new_state(plant.machines[0])
    assert "pending_resets" not in state.to_dict()  # states without any stay as they were
    schedule(state.pending_resets, PendingReset(RESET_MS, "signals", SIGNAL, "ops", "new probe"))
    schedule(state.pending_resets, PendingReset(RESET_MS - 1))
    back = decode_state(encode_state(state))
    assert back.pending_resets == state.pending_resets
    assert back.to_dict() == state.to_dict()


def _running(processor: TelemetryProcessor, plant: PlantConfig, until_batch: int) -> dict[str, MachineState]:
    """acme/M01 running, with readings up to batch ``until_batch`` applied."""
    spec = plant.machines[0]
    state = processor.engine.new_state(spec)
    processor.engine.on_state(state, spec, T0, "running", None)
    rng = np.random.default_rng(1)
    for batch in range(until_batch):
        times, values = _batch(batch, None, rng)
        processor.engine.on_samples(state, spec, int(times[-1]), [(SIGNAL, times, values)])
    return {spec.key: state}


def test_a_reset_at_a_time_waits_and_a_reread_does_not_add_it_twice(
    processor: TelemetryProcessor, plant: PlantConfig
) -> None:
    states = _running(processor, plant, 40)
    value = _command(name=SIGNAL, at_ms=RESET_MS)
    for _ in range(2):  # the second: the same offset read again after a restart
        outcome = processor.process_control(KEY, value, load_state=states.get, source="control:0", offset=3)
        assert isinstance(outcome, Applied) and not outcome.alerts
    state = states["acme/M01"]
    assert state.pending_resets == [PendingReset(RESET_MS, None, SIGNAL)]
    assert f"signals:{SIGNAL}" in state.monitors, "not applied before its time"
    assert processor.apply_due_resets(state) == []
    # Shown in /api/machines while it waits (a reset sent with a wrong time is seen before it fires).
    stream = cast(LinepulseStream, SimpleNamespace(processor=processor))
    view = machine_view(
        stream, state, Silence(silent_s=0.0, received_ago_s=0.0, stale=False), Counters.of(state)
    )
    calendar = processor.engine.calendar_for(state)
    assert view["baseline_resets_waiting"] == [
        {
            "at": calendar.local_isoformat(RESET_MS),
            "series": None,
            "name": SIGNAL,
            "requested_by": None,
            "reason": None,
        }
    ]


def test_a_reset_whose_time_is_past_is_applied_at_once_with_a_warning(
    processor: TelemetryProcessor, plant: PlantConfig, caplog: pytest.LogCaptureFixture
) -> None:
    states = _running(processor, plant, 40)
    state = states["acme/M01"]
    assert state.last_seen_ms is not None and state.last_seen_ms > T0 + 1000
    with caplog.at_level(logging.WARNING, logger="streams.processing"):
        outcome = processor.process_control(
            KEY, _command(name=SIGNAL, at_ms=T0 + 1000), load_state=states.get
        )
    assert isinstance(outcome, Applied)
    assert state.pending_resets == [] and f"signals:{SIGNAL}" not in state.monitors
    assert "is already at" in caplog.text and "not exactly at its time" in caplog.text


def test_resets_beyond_the_bound_are_rejected_naming_at_ms(
    processor: TelemetryProcessor, plant: PlantConfig, tmp_path: Path
) -> None:
    states = _running(processor, plant, 1)
    for offset in range(MAX_PENDING_RESETS + 1):
        at_ms = RESET_MS + offset
        outcome = processor.process_control(KEY, _command(at_ms=at_ms), load_state=states.get)
    assert isinstance(outcome, Rejection)
    assert (outcome.code, outcome.field) == ("too_many_pending", "at_ms") and "at most" in outcome.reason


def test_analyze_takes_more_resets_of_a_machine_than_a_worker_state_holds(
    plant: PlantConfig, tmp_path: Path
) -> None:
    """The bound is the worker state's: analyze keeps the resets not yet due itself, so a history
    with many resets of one machine can still be analysed."""
    source = tmp_path / "telemetry.jsonl"
    _telemetry_file(source, 480)
    many = MAX_PENDING_RESETS + 4
    resets = [parse_scheduled_reset(plant, f"acme/M01@{RESET_MS + i * 100_000}") for i in range(many)]
    summary = analyze_file(source, plant, tmp_path / "out", load_settings(), resets)
    assert summary["baseline_resets"] == many
    assert "baseline_resets_not_reached" not in summary
    assert "baseline_resets_matched_nothing" not in summary


@pytest.mark.parametrize("at_ms", ["2026-11-25T06:00:00Z", 5, True, 1.5e12])
def test_a_bad_at_ms_is_rejected_naming_it(processor: TelemetryProcessor, at_ms: Any) -> None:
    outcome = processor.process_control(KEY, _command(at_ms=at_ms), load_state=lambda _: None)
    assert isinstance(outcome, Rejection) and (outcome.code, outcome.field) == ("invalid_schema", "at_ms")


def test_the_cli_names_a_bad_at(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["baseline", "reset", "--machine", "M01", "--bootstrap-servers", "127.0.0.1:1", "--at", "noon"]
    assert main(argv) == 2
    assert "--at: time 'noon'" in capsys.readouterr().err


def _worker_records(
    processor: TelemetryProcessor, table: Any, values: list[bytes], batch_size: int, at: list[int]
) -> tuple[list[bytes], list[bytes]]:
    """The alert and KPI records of a worker sent ``baseline reset --at`` for each of ``at`` before
    the stream, which it then reads in batches of ``batch_size``."""
    states = StateTable(table)
    kpis: list[bytes] = []
    alerts: list[bytes] = []
    for offset, at_ms in enumerate(at):
        command = _command(name=SIGNAL, at_ms=at_ms) if offset == 0 else _command(at_ms=at_ms)
        outcome = processor.process_control(
            KEY, command, load_state=states.load, source="control:1", offset=offset
        )
        assert isinstance(outcome, Applied)
        states.stage(outcome.state, 1)
    write_acknowledged(states)
    applier = BatchApplier(processor, states, "telemetry")
    for start in range(0, len(values), batch_size):
        outcomes = applier.apply(messages(values[start : start + batch_size], start, partition=1))
        for outcome in applier.in_order(outcomes):
            assert isinstance(outcome, Applied)
            kpis += [record_bytes(kpi) for kpi in outcome.kpis]
            alerts += [record_bytes(alert) for alert in outcome.alerts]
        write_acknowledged(states)
    return kpis, alerts


def _analyze_records(out: Path) -> tuple[list[bytes], list[bytes]]:
    """Its KPI records but those of the windows still open at the end (a worker keeps them open)."""
    kpis = [line for line in (out / "kpis.jsonl").read_bytes().splitlines() if orjson.loads(line)["complete"]]
    return kpis, (out / "alerts.jsonl").read_bytes().splitlines()


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_the_worker_applies_a_reset_at_its_time_as_analyze_does(
    processor: TelemetryProcessor, plant: PlantConfig, table: Any, tmp_path: Path, batch_size: int
) -> None:
    source = tmp_path / "telemetry.jsonl"
    _telemetry_file(source, 480)
    values = source.read_bytes().splitlines()
    resets = [parse_scheduled_reset(plant, f"acme/M01:{SIGNAL}@{RESET_MS}")]
    resets.append(parse_scheduled_reset(plant, f"acme/M01@{LATER_MS}"))
    summary = analyze_file(source, plant, tmp_path / "out", load_settings(), resets)
    assert summary["baseline_resets"] == 2
    expected = _analyze_records(tmp_path / "out")
    worker = _worker_records(processor, table, values, batch_size, [RESET_MS, LATER_MS])
    assert worker[0] == expected[0] and worker[1] == expected[1]
    assert any((orjson.loads(alert)["resolution"] or {}).get("by") == "baseline_reset" for alert in worker[1])
    # The resets matter here: without them the alerts differ (the drift stays open).
    plain = analyze_file(source, plant, tmp_path / "plain", load_settings())
    assert plain["baseline_resets"] == 0
    assert _analyze_records(tmp_path / "plain")[1] != expected[1]


def test_a_processing_error_after_a_reset_in_the_batch_keeps_the_reset_where_it_was(
    processor: TelemetryProcessor,
    plant: PlantConfig,
    table: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The failing message's machine is rebuilt from the table and the batch's earlier steps: the
    reset applied among them must be redone there, not again at the machine's next message."""
    source = tmp_path / "telemetry.jsonl"
    _telemetry_file(source, 480)
    values = source.read_bytes().splitlines()
    bad = 125  # after message 120, where the reset is due, in the same batch of 100
    bad_ts = orjson.loads(values[bad])["ts"]
    each, one = processor.engine.on_samples_each, processor.engine.on_samples

    def broken_each(state: MachineState, spec: Any, batches: Any) -> Any:
        if any(ts_ms == bad_ts for ts_ms, _ in batches):
            raise ZeroDivisionError("a bug")
        return each(state, spec, batches)

    def broken_one(state: MachineState, spec: Any, ts_ms: int, series: Any) -> Any:
        result = one(state, spec, ts_ms, series)  # the state changes, then the bug
        if ts_ms == bad_ts:
            raise ZeroDivisionError("a bug")
        return result

    monkeypatch.setattr(processor.engine, "on_samples_each", broken_each)
    monkeypatch.setattr(processor.engine, "on_samples", broken_one)

    def run(table: Any, skip: int | None) -> dict[str, Any]:
        states = StateTable(table)
        command = _command(name=SIGNAL, at_ms=RESET_MS)
        outcome = processor.process_control(
            KEY, command, load_state=states.load, source="control:1", offset=0
        )
        assert isinstance(outcome, Applied)
        states.stage(outcome.state, 1)
        write_acknowledged(states)
        applier = BatchApplier(processor, states, "telemetry")
        stream = messages(values, 0, partition=1)
        for start in range(0, len(stream), 100):
            batch = [m for m in stream[start : start + 100] if m.offset != skip]
            outcomes = applier.apply(batch)
            assert [m.offset for m, o in zip(batch, outcomes, strict=True) if isinstance(o, Rejection)] == (
                [bad] if start <= bad < start + 100 and skip is None else []
            )
            write_acknowledged(states)
        return decode_state(table[KEY]).to_dict()

    with caplog.at_level(logging.WARNING, logger="streams.processing"):
        failed = run(table, None)
    # Applied once: the machine's rebuild redoes it without a second line for the operator.
    announced = [r for r in caplog.records if r.getMessage().startswith("baseline reset on acme/M01 at")]
    assert len(announced) == 1, [r.getMessage() for r in announced]
    with memory_table(tmp_path / "reference", "pending-resets-reference", partitions=4) as reference:
        assert failed == run(reference, bad)
