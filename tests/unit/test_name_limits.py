"""A machine's sensor signals and quality characteristics are bounded (max_signals_per_machine,
max_characteristics_per_machine): one more is a dead letter, what the machine knows goes on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from models.machine_state import MachineState
from models.plant import PlantConfig
from models.spc.capability import CapabilityStats
from service.cli import main
from service.exceptions import ConfigError
from service.plant_file import load_demo_plant, parse_plant
from streams.batch import BatchApplier
from streams.decode import REJECTION_CODES, Rejection, TelemetryDecoder
from streams.frames import Frame, SignalBlock, encode_frame
from streams.name_limits import CharacteristicLimit
from streams.processing import Applied, TelemetryProcessor, decode_state, encode_state
from streams.state_table import StateTable
from tests.unit.faust_tables import memory_table, write_acknowledged
from tests.unit.test_batch import messages

LIMIT = 3
NOW_MS = int(time.time() * 1000)


def plant(limit: int = LIMIT) -> PlantConfig:
    return PlantConfig.model_validate({**load_demo_plant().model_dump(), "max_signals_per_machine": limit})


def samples(offset: int, *names: str, machine: str = "M01") -> bytes:
    ts = NOW_MS - 60_000 + offset * 100
    signals = [{"signal": name, "ts": [ts - 10, ts], "values": [1.0 + offset, 2.0]} for name in names]
    record = {"v": 1, "tenant": "demo", "site": "p1", "line": "L1", "machine": machine, "ts": ts}
    return orjson.dumps({**record, "kind": "samples", "signals": signals})


def frame(offset: int, *names: str) -> bytes:
    ts = NOW_MS - 60_000 + offset * 100
    blocks = tuple(
        SignalBlock(name, None, np.array([ts - 10, ts], dtype=np.int64), np.array([1.0, 2.0]))
        for name in names
    )
    return encode_frame(Frame("demo", "p1", "L1", "M01", ts, None, blocks))


def sensor(offset: int, name: str) -> bytes:
    ts = NOW_MS - 60_000 + offset * 100
    record = {"v": 1, "tenant": "demo", "site": "p1", "line": "L1", "machine": "M01", "ts": ts}
    return orjson.dumps({**record, "kind": "sensor", "signal": name, "value": 1.5})


# offset: message, and the field its rejection names (None: applied)
STREAM: list[tuple[bytes, str | None]] = [
    (samples(0, "a", "b"), None),
    (samples(1, "a", "c", "d"), "signals.2.signal"),  # c is the 3rd, d would be the 4th
    (sensor(2, "e"), None),  # the rejected message added nothing: e is the 3rd
    (frame(3, "a", "b", "e"), None),  # known signals go on
    (sensor(4, "f"), "signal"),
    (frame(5, "b", "g"), "signals.1.signal"),
    (samples(6, "x", "y", "z", "w", machine="M02"), "signals.3.signal"),  # per machine
    (samples(7, "x", "y", "z", machine="M02"), None),
]


def one_by_one(
    processor: TelemetryProcessor, values: list[bytes]
) -> tuple[list[Any], dict[str, MachineState]]:
    states: dict[str, MachineState] = {}
    outcomes = []
    for offset, value in enumerate(values):
        key = b"demo/M02" if b'"M02"' in value else b"demo/M01"
        outcome = processor.process(
            key, value, timestamp_ms=NOW_MS, load_state=states.get, source="telemetry:2", offset=offset
        )
        outcomes.append(outcome)
        if isinstance(outcome, Applied):
            states[outcome.state.key] = outcome.state
    return outcomes, states


def expect(outcomes: list[Any]) -> None:
    for (value, field), outcome in zip(STREAM, outcomes, strict=True):
        if field is None:
            assert isinstance(outcome, Applied) and not outcome.duplicate, (value, outcome)
        else:
            assert isinstance(outcome, Rejection), (value, outcome)
            assert (outcome.code, outcome.field) == ("too_many_signals", field)
            assert outcome.machine_key is None  # nothing was changed: no state to reload
            assert f"at most {LIMIT}" in outcome.reason and "max_signals_per_machine" in outcome.reason


def test_one_more_signal_is_dead_lettered_and_the_known_ones_go_on() -> None:
    assert "too_many_signals" in REJECTION_CODES  # a metric label the worker pre-creates
    processor = TelemetryProcessor(plant(), max_payload_bytes=1 << 20, max_future_ms=300_000)
    outcomes, states = one_by_one(processor, [value for value, _ in STREAM])
    expect(outcomes)
    m01, m02 = states["demo/M01"], states["demo/M02"]
    assert sorted(m01.signals) == ["a", "b", "e"] and sorted(m02.signals) == ["x", "y", "z"]
    # Only applied messages count: readings and the offsets recorded.
    assert m01.totals.readings == 2 * 2 + 1 + 3 * 2
    assert m01.applied == {"telemetry:2": 3} and m02.applied == {"telemetry:2": 7}


def test_a_batch_rejects_the_same_messages_and_writes_the_same_states(tmp_path: Path) -> None:
    """The worker applies consecutive readings of a machine as one run (process_samples)."""
    processor = TelemetryProcessor(plant(), max_payload_bytes=1 << 20, max_future_ms=300_000)
    values = [value for value, _ in STREAM]
    with memory_table(tmp_path, "signal-limit", partitions=4) as table:
        states = StateTable(table)
        outcomes = BatchApplier(processor, states, "telemetry").apply(messages(values))
        write_acknowledged(states)
        stored = {raw.decode(): decode_state(table[raw]) for raw in table}
    expect(outcomes)
    _, reference = one_by_one(processor, values)
    assert {k: s.to_dict() for k, s in stored.items()} == {
        k: decode_state(encode_state(s)).to_dict() for k, s in reference.items()
    }


def test_a_state_over_a_lowered_limit_keeps_its_signals() -> None:
    wide = TelemetryProcessor(plant(10), max_payload_bytes=1 << 20, max_future_ms=300_000)
    _, states = one_by_one(wide, [samples(0, "a", "b", "c", "d", "e")])
    narrow = TelemetryProcessor(plant(2), max_payload_bytes=1 << 20, max_future_ms=300_000)
    known = narrow.process(
        b"demo/M01", samples(1, "e", "a"), timestamp_ms=NOW_MS, load_state=states.get, source="t:0", offset=1
    )
    assert isinstance(known, Applied)
    new = narrow.process(
        b"demo/M01", sensor(2, "f"), timestamp_ms=NOW_MS, load_state=states.get, source="t:0", offset=2
    )
    assert isinstance(new, Rejection) and new.code == "too_many_signals"
    assert "has 5 of at most 2" in new.reason


@pytest.mark.parametrize("field", ["max_signals_per_machine", "max_characteristics_per_machine"])
@pytest.mark.parametrize("value", ["0", "4097", "many"])
def test_the_plant_file_names_a_bad_limit(field: str, value: str) -> None:
    text = "timezone: UTC\nmachines: [{tenant: t, site: s, line: l, id: m, ideal_cycle_s: 1}]\n"
    with pytest.raises(ConfigError, match=field):
        parse_plant(text + f"{field}: {value}\n", "plant.yaml")


def quality(offset: int, characteristic: str, product: str | None = None) -> bytes:
    ts = NOW_MS - 60_000 + offset * 100
    record = {"v": 1, "tenant": "demo", "site": "p1", "line": "L1", "machine": "M01", "ts": ts}
    part = {"kind": "quality", "characteristic": characteristic, "value": 25.0, "lsl": 24.9, "usl": 25.1}
    return orjson.dumps({**record, **part, **({"product": product} if product else {})})


def test_one_more_characteristic_is_dead_lettered_and_the_known_ones_go_on() -> None:
    limited = {**load_demo_plant().model_dump(), "max_characteristics_per_machine": 2}
    processor = TelemetryProcessor(
        PlantConfig.model_validate(limited), max_payload_bytes=1 << 20, max_future_ms=300_000
    )
    values = [
        quality(0, "bore"),
        quality(1, "bore", "P2"),  # a product of a known characteristic: its own monitor, no new name
        quality(2, "depth"),
        quality(3, "width"),  # the third
        quality(4, "depth", "P2"),
        sensor(5, "spindle"),  # signals are counted apart
    ]
    outcomes, states = one_by_one(processor, values)
    kinds = [o.code if isinstance(o, Rejection) else "applied" for o in outcomes]
    assert kinds == ["applied", "applied", "applied", "too_many_characteristics", "applied", "applied"]
    refused = outcomes[3]
    assert (
        isinstance(refused, Rejection) and refused.field == "characteristic" and refused.machine_key is None
    )
    assert refused.reason == (
        "'width' would be a new characteristic of a machine that has 2 of at most 2 "
        "(the plant file's max_characteristics_per_machine)"
    )
    state = states["demo/M01"]
    assert {key.split("|")[0] for key in state.capability} == {"bore", "depth"}
    assert state.applied == {"telemetry:2": 5}


def test_analyze_dead_letters_the_same_lines_with_their_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "plant.yaml"
    config.write_text(
        "timezone: Asia/Seoul\nmax_signals_per_machine: 3\nmachines:\n"
        "  - {tenant: demo, site: p1, line: L1, id: M01, ideal_cycle_s: 6.0}\n"
        "  - {tenant: demo, site: p1, line: L1, id: M02, ideal_cycle_s: 6.0}\n"
    )
    source = tmp_path / "telemetry.jsonl"
    lines = [value for value, _ in STREAM if value[:4] != b"LPF1"]  # JSON lines only: one per line
    source.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    assert main(["analyze", str(source), "--config", str(config), "--out", str(out)]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    rejected = [field for value, field in STREAM if value[:4] != b"LPF1" and field is not None]
    assert summary["dead_letters"] == len(rejected) == 3
    dead = [orjson.loads(line) for line in (out / "dead_letters.jsonl").read_bytes().splitlines()]
    assert [(entry["code"], entry["field"]) for entry in dead] == [("too_many_signals", f) for f in rejected]
    assert [entry["raw"].encode() for entry in dead] == [lines[entry["line"] - 1] for entry in dead]


def test_a_characteristic_whose_monitors_a_reset_dropped_is_still_known() -> None:
    """A baseline reset drops monitors, never capability: the name stays the machine's."""
    plant = load_demo_plant()
    state = MachineState("demo", "p1", "L1", "M01", capability={"bore|-|day": CapabilityStats()})
    decoder = TelemetryDecoder(plant, max_payload_bytes=1 << 20, max_future_ms=300_000)
    limit = CharacteristicLimit(1)
    for name, allowed in (("bore", True), ("depth", False)):
        decoded = decoder.decode(b"demo/M01", quality(0, name), None)
        assert not isinstance(decoded, Rejection)
        assert (limit.check(decoded.event, state) is None) == allowed, name
