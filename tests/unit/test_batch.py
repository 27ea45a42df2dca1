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
    applier = BatchApplier(processor, states)
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
    applier = BatchApplier(processor, states)
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
    outcomes = BatchApplier(processor, states).apply(messages(values), int(time.time() * 1000))
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
