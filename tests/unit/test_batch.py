"""Batches: each changed machine state staged once, the same effects as one message at a time.

The table is a real Faust table of an app that is never started: its changelog records are
buffered, not sent (the Kafka side is tested in tests/integration/test_worker_sigkill.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from faust.types import Message

from models.machine import MachineState
from service.plant_file import load_demo_plant
from streams.batch import BatchApplier
from streams.decode import Rejection
from streams.processing import Applied, TelemetryProcessor, decode_state, encode_state
from streams.state_table import StateTable
from tests.unit.test_processing import key, simulated, totals

PARTITION = 2


@pytest.fixture
def processor() -> TelemetryProcessor:
    return TelemetryProcessor(load_demo_plant(), max_payload_bytes=1 << 20, max_future_ms=300_000)


@pytest.fixture
def table(tmp_path: Path) -> Iterator[Any]:
    app = faust.App(
        "batch-test", broker="kafka://127.0.0.1:1", store="memory://", datadir=str(tmp_path),
        key_serializer="raw", value_serializer="raw", topic_partitions=4,
    )  # fmt: skip
    yield app.Table("machine-state", key_type=bytes, value_type=bytes, partitions=4)


def messages(values: list[bytes], first_offset: int = 0) -> list[Message]:
    return [
        Message(
            topic="telemetry",
            partition=PARTITION,
            offset=first_offset + i,
            timestamp=0.0,
            timestamp_type=0,
            headers=[],
            key=key(value),
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
            now_ms=now,
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
        outcomes = applier.apply(messages(values[start : start + 150], start), int(time.time() * 1000))
        assert all(isinstance(o, Applied) and not o.duplicate for o in outcomes)
        written.append(len(states.write_staged()))
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
    applier.apply(messages(values), int(time.time() * 1000))
    states.write_staged()
    before = totals(table_states(table))
    states.clear()  # a restart: states come back from the table
    outcomes = applier.apply(messages(values), int(time.time() * 1000))
    assert all(isinstance(o, Applied) and o.duplicate for o in outcomes)
    assert states.write_staged() == []
    assert totals(table_states(table)) == before


def test_a_processing_error_mid_batch_keeps_the_other_messages_of_its_machine(
    processor: TelemetryProcessor, table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = simulated(200, seed=13)
    # A message in the middle whose machine has messages before and after it in the batch.
    bad = next(
        i
        for i in range(60, 200)
        if key(values[i]) in {key(v) for v in values[:i]} & {key(v) for v in values[i + 1 :]}
    )
    original = processor._apply
    target = processor.decoder.decode(key(values[bad]), values[bad], int(time.time() * 1000))
    assert not isinstance(target, Rejection)

    def broken_once(state: MachineState, accepted: Any) -> Any:
        result = original(state, accepted)  # the state is changed, then the bug strikes
        if accepted.event == target.event:
            raise ZeroDivisionError("a bug")
        return result

    monkeypatch.setattr(processor, "_apply", broken_once)
    states = StateTable(table)
    outcomes = BatchApplier(processor, states, "telemetry").apply(messages(values), int(time.time() * 1000))
    states.write_staged()
    rejected = [i for i, o in enumerate(outcomes) if isinstance(o, Rejection)]
    assert rejected == [bad]
    monkeypatch.setattr(processor, "_apply", original)
    assert totals(table_states(table)) == totals(one_at_a_time(processor, values, skip=bad))


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
    applier.apply(messages(values), int(time.time() * 1000))
    states.write_staged()
    ticked = applier.tick_silent()
    assert [outcome.state.machine for outcome in ticked] == ["M01"]
    tick_ms = start + 3 * hour_ms - 900_000  # stream time (M02's newest event) minus 900 s
    assert ticked[0].state.cursor_ms == tick_ms
    assert ticked[0].state.last_seen_ms == start + 600_000  # a tick is not telemetry of M01
    hours = sorted((kpi for kpi in ticked[0].kpis if kpi.window == "hour"), key=lambda kpi: kpi.start_ms)
    assert [kpi.start_ms for kpi in hours] == [start, start + hour_ms]
    # Believed for state_timeout_s (900 s) after its last event at 10 min: 25 min run, then unknown.
    assert (hours[0].run_s, hours[0].unknown_s) == (1500, 2100)
    assert (hours[1].run_s, hours[1].unknown_s) == (0, 3600)
    assert applier.tick_silent() == []  # the next check waits for stream time to move on
