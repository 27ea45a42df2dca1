"""Batches: each changed machine state staged once, the same effects as one message at a time.

The table is a real Faust table of an app that is never started: its changelog records are
buffered, not sent (the Kafka side is tested in tests/integration/test_worker_sigkill.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from faust.types import Message

from benchmarks.drift_quality import START_MS
from models.event_rank import RANK_COUNT, RANK_CYCLE, RANK_HEARTBEAT, RANK_STATE
from models.machine_state import MachineState
from service.plant_file import load_demo_plant
from service.simulator import FaultKind, PlantSimulator
from service.simulator.faults import _resolve
from streams import batch as batch_module
from streams.batch import BatchApplier
from streams.decode import Rejection
from streams.frames import Frame, SignalBlock, decode_frame, encode_frame
from streams.processing import Applied, TelemetryProcessor, decode_state, encode_state
from streams.state_table import StateTable
from streams.stop_watch import StopWatch
from streams.stream_time import StreamTime
from tests.unit.faust_tables import memory_table, write_acknowledged
from tests.unit.test_processing import key, simulated, totals

PARTITION = 2


@pytest.fixture
def processor() -> TelemetryProcessor:
    return TelemetryProcessor(load_demo_plant(), max_payload_bytes=1 << 20, max_future_ms=300_000)


@pytest.fixture
def table(tmp_path: Path) -> Iterator[Any]:
    with memory_table(tmp_path, "batch-test", partitions=4) as table:
        yield table


def key_of(value: bytes) -> bytes:
    """The message key of a JSON record or a binary frame."""
    if value[:4] == b"LPF1":
        frame = decode_frame(value)
        return f"{frame.tenant}/{frame.machine}".encode()
    return key(value)


def messages(values: list[bytes], first_offset: int = 0) -> list[Message]:
    return [
        Message(
            topic="telemetry",
            partition=PARTITION,
            offset=first_offset + i,
            timestamp=time.time(),  # CreateTime: produced now
            timestamp_type=0,
            headers=[],
            key=key_of(value),
            value=value,
            checksum=None,
        )
        for i, value in enumerate(values)
    ]


def one_at_a_time(
    processor: TelemetryProcessor, values: list[bytes], skip: int = -1
) -> dict[str, MachineState]:
    states: dict[str, MachineState] = {}
    now = int(time.time() * 1000)
    for offset, value in enumerate(values):
        if offset == skip:
            continue
        outcome = processor.process(
            key(value),
            value,
            timestamp_ms=now,
            load_state=states.get,
            source=f"telemetry:{PARTITION}",
            offset=offset,
        )
        assert isinstance(outcome, Applied)
        states[outcome.state.key] = outcome.state
    return states


def table_states(table: Any) -> dict[str, MachineState]:
    return {raw.decode(): decode_state(table[raw]) for raw in table}


def test_a_batch_writes_each_changed_state_once_with_the_effects_of_every_message(
    processor: TelemetryProcessor, table: Any
) -> None:
    values = simulated(400, seed=11)
    states = StateTable(table)
    applier = BatchApplier(processor, states, "telemetry")
    written = []
    for start in range(0, len(values), 150):  # three batches
        outcomes = applier.apply(messages(values[start : start + 150], start))
        assert all(isinstance(o, Applied) and not o.duplicate for o in outcomes)
        written.append(len(write_acknowledged(states)))
    machines = {key(value) for value in values}
    assert max(written) == len(machines)  # one write per machine and batch, not one per message
    reference = one_at_a_time(processor, values)
    assert totals(table_states(table)) == totals(reference)
    last = table_states(table)[key(values[-1]).decode()]
    assert last.applied == {f"telemetry:{PARTITION}": len(values) - 1}


def test_a_redelivered_batch_is_all_duplicates(processor: TelemetryProcessor, table: Any) -> None:
    values = simulated(120, seed=12)
    states = StateTable(table)
    applier = BatchApplier(processor, states, "telemetry")
    applier.apply(messages(values))
    write_acknowledged(states)
    before = totals(table_states(table))
    states.clear()  # a restart: states come back from the table
    outcomes = applier.apply(messages(values))
    assert all(isinstance(o, Applied) and o.duplicate for o in outcomes)
    assert write_acknowledged(states) == []
    assert totals(table_states(table)) == before


_RANKS = {"state": RANK_STATE, "count": RANK_COUNT, "cycle": RANK_CYCLE}


def _engine_entry(value: bytes) -> tuple[bytes, int, int]:
    """(machine key, event time, rank) of the time-model entry a message makes the engine record."""
    record = orjson.loads(value)
    return key(value), int(record["ts"]), _RANKS.get(record["kind"], RANK_HEARTBEAT)


@pytest.mark.parametrize("kind", ["samples", "cycle"])
def test_a_processing_error_mid_batch_keeps_the_other_messages_of_its_machine(
    processor: TelemetryProcessor, table: Any, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The bug strikes inside the engine, after the state has changed: in a run of readings applied
    together (samples) and in a message applied alone (cycle)."""
    values = simulated(200, seed=13)
    entries = [_engine_entry(value) for value in values]
    # A message in the middle whose machine has messages before and after it in the batch.
    bad = next(
        i
        for i in range(60, 200)
        if orjson.loads(values[i])["kind"] == kind
        and entries.count(entries[i]) == 1
        and key(values[i]) in {key(v) for v in values[:i]} & {key(v) for v in values[i + 1 :]}
    )
    target_key, target_ts, target_rank = entries[bad]
    original = processor.engine._record

    def broken(state: MachineState, spec: Any, ts_ms: int, rank: int, values: Any, readings: int = 0) -> Any:
        result = original(state, spec, ts_ms, rank, values, readings)  # the state changes, then the bug
        if (spec.key.encode(), ts_ms, rank) == (target_key, target_ts, target_rank):
            raise ZeroDivisionError("a bug")
        return result

    monkeypatch.setattr(processor.engine, "_record", broken)
    states = StateTable(table)
    outcomes = BatchApplier(processor, states, "telemetry").apply(messages(values))
    write_acknowledged(states)
    rejected = [i for i, o in enumerate(outcomes) if isinstance(o, Rejection)]
    assert rejected == [bad]
    monkeypatch.setattr(processor.engine, "_record", original)
    expected = one_at_a_time(processor, values, skip=bad)
    assert totals(table_states(table)) == totals(expected)
    assert {k: s.to_dict() for k, s in table_states(table).items()} == {
        k: decode_state(encode_state(s)).to_dict() for k, s in expected.items()
    }


def _drifting_stream(hours: float) -> list[bytes]:
    """The demo plant with a sensor drift on M01, rearranged so readings arrive in long runs per
    machine (as gateways that send frames do): frames and JSON samples mixed, M01-M03 send no
    cycles or counts, and each machine's messages keep their order."""
    plant = load_demo_plant()
    machine = plant.machines[0]
    start = START_MS + 4 * 3_600_000
    fault = _resolve(FaultKind.SENSOR_DRIFT, machine, "vibration_rms", start, start + 90 * 60_000)
    sim = PlantSimulator(plant, seed=5, start_ms=START_MS, faults=[fault])
    quiet = {m.key for m in plant.machines[:3]}
    values: list[bytes] = []
    for n, record in enumerate(sim.events(START_MS + int(hours * 3_600_000))):
        machine_key = f"{record['tenant']}/{record['machine']}"
        if record["kind"] in ("cycle", "count") and machine_key in quiet:
            continue
        if record["kind"] == "samples" and n % 2:
            values.append(_as_frame(record))
        else:
            values.append(orjson.dumps(record))
    # Windows of 400 messages, stably sorted by machine: per-machine order is untouched.
    out: list[bytes] = []
    for i in range(0, len(values), 400):
        out += sorted(values[i : i + 400], key=key_of)
    return out


def _as_frame(record: dict[str, Any]) -> bytes:
    blocks = tuple(
        SignalBlock(
            s["signal"], s.get("unit"), np.asarray(s["ts"], dtype=np.int64), np.asarray(s["values"], float)
        )
        for s in record["signals"]
    )
    frame = Frame(
        tenant=record["tenant"], site=record["site"], line=record["line"], machine=record["machine"],
        ts_ms=record["ts"], seq=record.get("seq"), signals=blocks,
    )  # fmt: skip
    return encode_frame(frame)


def one_by_one_with_stops(
    processor: TelemetryProcessor, values: list[bytes], states: dict[str, MachineState], now: int
) -> list[Applied]:
    """The outcomes of ``values`` applied one message at a time, each followed by the stopped
    machines its event time made due on the partition's stream time (what ``analyze`` does)."""
    stops, stream_time = StopWatch(), StreamTime()
    single: list[Applied] = []
    for offset, value in enumerate(values):
        outcome = processor.process(
            key_of(value), value, timestamp_ms=now, load_state=states.get,
            source=f"telemetry:{PARTITION}", offset=offset,
        )  # fmt: skip
        assert isinstance(outcome, Applied)
        states[outcome.state.key] = outcome.state
        single.append(outcome)
        clock = (PARTITION, outcome.state.tenant)
        stops.schedule(clock, outcome.state.key, processor.stop_deadline(outcome.state))
        assert outcome.newest_ms is not None
        stream_ms = stream_time.advance(clock, outcome.newest_ms)
        for due in stops.due(clock, stream_ms):
            judged = processor.process_stream_time(states[due], stream_ms)
            if judged is not None:
                single.append(judged)
    return single


@pytest.mark.parametrize("cap", [None, 300], ids=["runs-as-long-as-the-batch-allows", "runs-cut-at-300"])
def test_readings_applied_in_runs_give_exactly_the_states_and_records_of_one_by_one(
    processor: TelemetryProcessor, table: Any, monkeypatch: pytest.MonkeyPatch, cap: int | None
) -> None:
    values = _drifting_stream(hours=6.0)
    now = START_MS + 10 * 24 * 3_600_000
    runs: list[int] = []
    readings: list[int] = []
    process_samples = processor.process_samples

    def counted(run: Any, **kwargs: Any) -> Any:
        runs.append(len(run))
        readings.append(sum(processor.readings(decoded) for decoded, _ in run))
        return process_samples(run, **kwargs)

    monkeypatch.setattr(processor, "process_samples", counted)
    if cap is not None:  # a run is applied once it holds this many readings: many runs cut short
        monkeypatch.setattr(batch_module, "RUN_READINGS", cap)
    states = StateTable(table)
    applier = BatchApplier(processor, states, "telemetry")
    merged: list[Any] = []
    for start in range(0, len(values), 500):
        merged += applier.in_order(applier.apply(messages(values[start : start + 500], start)))
        write_acknowledged(states)
    assert sum(runs) > len(values) / 2  # most readings were applied in runs
    if cap is None:
        assert max(runs) >= 20 and max(readings) < batch_module.RUN_READINGS
    else:
        assert max(runs) >= 2 and sum(n >= cap for n in readings) >= 20
        assert max(readings) < 2 * cap

    reference: dict[str, MachineState] = {}
    single = one_by_one_with_stops(processor, values, reference, now)

    def fields(outcome: Any) -> Any:
        return (outcome.kpis, outcome.alerts, outcome.duplicate, outcome.late, outcome.too_late,
                outcome.readings, outcome.newest_ms)  # fmt: skip

    assert [fields(o) for o in merged] == [fields(o) for o in single]
    stored = {k: s.to_dict() for k, s in table_states(table).items()}
    assert stored == {k: decode_state(encode_state(s)).to_dict() for k, s in reference.items()}
    stopped = [a for o in single for a in o.alerts if a.kind == "machine_stopped" and a.status == "open"]
    assert any(a.evidence["measured_on"] == "stream_time" for a in stopped)  # judged mid-batch too
    drift = [a for o in single for a in o.alerts if a.kind == "drift"]
    assert any(a.evidence["signal"] == "vibration_rms" and a.machine == "M01" for a in drift)
    assert sum(len(o.kpis) for o in single) > 0


def test_states_are_stored_compressed_and_plain_json_of_earlier_versions_loads(
    processor: TelemetryProcessor,
) -> None:
    state = next(iter(one_at_a_time(processor, simulated(300, seed=14)).values()))
    stored = encode_state(state)
    plain = orjson.dumps(state.to_dict())
    assert len(stored) < len(plain) / 1.5
    assert decode_state(stored).to_dict() == decode_state(plain).to_dict() == state.to_dict()


def test_a_machine_the_partition_left_silent_is_ticked_and_its_hours_close(
    processor: TelemetryProcessor, table: Any
) -> None:
    """M01 runs for ten minutes and goes silent; M02 keeps the partition's stream time moving for
    three hours. Once stream time is close_silent_after_s (900 s, the default) past M01, M01 is
    ticked: its ended hours close with the silence as unknown time, and M02 is left alone."""
    hour_ms = 3_600_000
    start = (int(time.time() * 1000) // hour_ms - 6) * hour_ms  # a whole UTC (and Seoul) hour

    def event(machine: str, offset_ms: int, **fields: Any) -> bytes:
        base = {"v": 1, "tenant": "demo", "site": "p1", "line": "L1", "machine": machine}
        return orjson.dumps({**base, "ts": start + offset_ms, **fields})

    values = [event("M01", 0, kind="state", state="running"), event("M01", 600_000, kind="count", good=90)]
    values += [event("M02", minute * 60_000, kind="count", good=1) for minute in range(0, 181)]
    states = StateTable(table)
    applier = BatchApplier(processor, states, "telemetry")
    applier.apply(messages(values))
    # Ticked within the batch, before its states are written, so a machine first seen in this very
    # batch is only staged (its whole life and the silence in one batch).
    write_acknowledged(states)
    ticked = [outcome for _, outcome in applier.judged]
    assert {outcome.state.machine for outcome in ticked} == {"M01"}
    # Each minute of stream time (M02's event times) from 10 + 15 minutes on ticks M01 to that
    # minute minus 900 s; the last to 3 h minus 900 s.
    assert [index for index, _ in applier.judged] == [2 + minute for minute in range(26, 181)]
    tick_ms = start + 3 * hour_ms - 900_000
    assert ticked[-1].state.cursor_ms == tick_ms
    assert ticked[-1].state.last_seen_ms == start + 600_000  # a tick is not telemetry of M01
    hours = sorted(
        (kpi for o in ticked for kpi in o.kpis if kpi.window == "hour"), key=lambda kpi: kpi.start_ms
    )
    assert [kpi.start_ms for kpi in hours] == [start, start + hour_ms]
    # Believed for state_timeout_s (900 s) after its last event at 10 min: 25 min run, then unknown.
    assert (hours[0].run_s, hours[0].unknown_s) == (1500, 2100)
    assert (hours[1].run_s, hours[1].unknown_s) == (0, 3600)


def test_a_batch_is_judged_by_its_messages_kafka_timestamps_not_the_clock(
    processor: TelemetryProcessor, table: Any
) -> None:
    """The same batch gives the same outcomes whenever it is applied (after a restart, in a replay a
    year later): an event time is too far in the future only relative to its message's timestamp."""
    clock_ms = int(time.time() * 1000)
    base = {"v": 1, "tenant": "demo", "site": "p1", "line": "L1", "machine": "M01", "kind": "state"}
    # Sent by a source an hour ahead (CreateTime an hour ahead too): its own times agree.
    ahead = orjson.dumps({**base, "ts": clock_ms + 3_600_000, "state": "running"})
    # Sent a day ago, with an event time an hour after it was sent: a clock an hour fast.
    fast = orjson.dumps({**base, "machine": "M02", "ts": clock_ms - 23 * 3_600_000, "state": "idle"})
    batch = messages([ahead, fast])
    for message, ms in zip(batch, [clock_ms + 3_600_000 - 60_000, clock_ms - 24 * 3_600_000], strict=True):
        message.timestamp = ms / 1000.0  # as Faust gives it: the broker's milliseconds / 1000
    outcomes = BatchApplier(processor, StateTable(table), "telemetry").apply(batch)
    assert isinstance(outcomes[0], Applied)
    assert isinstance(outcomes[1], Rejection) and outcomes[1].code == "future_timestamp"


def test_the_changelog_records_are_one_per_changed_machine_on_its_partition_and_what_the_store_gets(
    processor: TelemetryProcessor, table: Any
) -> None:
    """What the outbox delivers before the batch is acked is exactly what the local store then holds."""
    values = simulated(300, seed=14)
    states = StateTable(table)
    applier = BatchApplier(processor, states, "telemetry")
    applier.apply(messages(values))
    records = states.changelog_records()
    assert sorted(record.key for record in records) == sorted({key(value) for value in values})
    assert {record.partition for record in records} == {PARTITION}
    assert {record.topic_name for record in records} == {table.changelog_topic.get_topic_name()}
    assert all(record.key not in table.data for record in records)  # not in the store before the acks
    states.write_staged()
    assert {record.key: record.value for record in records} == {raw: table.data[raw] for raw in table.data}
    assert states.changelog_records() == []  # written: nothing staged any more
    reference = one_at_a_time(processor, values)
    assert totals(table_states(table)) == totals(reference)
