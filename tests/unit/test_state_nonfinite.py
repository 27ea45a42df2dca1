"""Non-finite floats in a machine state survive the state table's JSON exactly: quality values near
the float maximum overflow capability sums (and a drift alert's shift) to infinity, and JSON's null
read back as 0.0 (or as no shift direction) made a restarted worker's state, and its records, differ
from the live one's."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from models.alert_rules import AlertState
from models.json_floats import (
    decode_float,
    decode_number,
    decode_tagged,
    encode_float,
    encode_number,
    encode_tagged,
)
from models.machine_state import MachineState
from models.spc.capability import CapabilityStats
from service.plant_file import load_demo_plant
from streams.decode import Rejection
from streams.processing import TelemetryProcessor, decode_state, encode_state
from streams.records import record_bytes

START = 1_795_392_000_000
ENVELOPE = {"v": 1, "tenant": "demo", "site": "p1", "line": "L1", "machine": "M01"}


def _json_round_trip(data: object) -> object:
    return orjson.loads(orjson.dumps(data))


def test_float_spellings_round_trip() -> None:
    for value in (math.inf, -math.inf, 1.5, -0.0, 1.7e308):
        assert decode_float(_json_round_trip(encode_float(value))) == value
    assert math.isnan(decode_float(_json_round_trip(encode_float(math.nan))))
    evidence = {"shift_sigma": math.inf, "top": [{"z": -math.inf}], "name": "inf", "n": 3}
    assert decode_tagged(_json_round_trip(encode_tagged(evidence))) == evidence


def test_state_vector_numbers_write_nan_as_null_and_refuse_anything_else() -> None:
    for value in (math.inf, -math.inf, 1.5, -0.0, 1.7e308):
        assert decode_number(_json_round_trip(encode_number(value)), "v") == value
    assert encode_number(math.nan) is None
    assert math.isnan(decode_number(None, "v"))
    for bad in (True, "nan", "Infinity", [1.0], {"inf": 1}):
        with pytest.raises(ValueError, match=r"^values\[3\]: expected a number, null"):
            decode_number(bad, "values[3]")


def test_capability_sums_that_overflowed_come_back_as_they_were() -> None:
    stats = CapabilityStats()
    for value in (1.7e308, -1.7e308, 1.7e308):
        stats.update(value, -1.7e308, 1.7e308)
    assert not math.isfinite(stats.m2)
    restored = CapabilityStats.from_list(_json_round_trip(stats.to_list()))  # type: ignore[arg-type]
    assert restored.to_list() == stats.to_list()
    assert repr(restored.indices()) == repr(stats.indices())  # NaN != NaN: compared as text


def test_a_capability_state_written_before_spellings_still_loads() -> None:
    restored = CapabilityStats.from_list([3.0, 1.0, None, 2.0, 2.0, 1.0, None, 2.0])
    assert (restored.m2, restored.lsl, restored.usl) == (0.0, None, 2.0)


def test_an_alerts_infinite_shift_keeps_its_direction() -> None:
    alert = AlertState(
        "id", "spc", "x", "warning", 1, 2, "m", {"shift_sigma": -math.inf, "detectors": ["rule1"]}
    )
    restored = AlertState.from_dict(_json_round_trip(alert.to_dict()))  # type: ignore[arg-type]
    assert restored == alert


def _run(through_table: bool) -> tuple[list[bytes], MachineState]:
    """Quality parts of ~32 mm with 20 parts at +-1.7e308 among them, the state kept live or
    written to and read from the table's form after every message (a restart before each)."""
    processor = TelemetryProcessor(load_demo_plant(), max_payload_bytes=1 << 20, max_future_ms=300_000)
    states: dict[str, MachineState] = {}
    records: list[bytes] = []
    messages = [{**ENVELOPE, "ts": START, "kind": "state", "state": "running"}]
    for i in range(1, 400):
        value = 32.0 + (i % 7) * 0.001
        if 100 <= i < 120:
            value = 1.7e308 if i % 2 else -1.7e308
        part = {"kind": "quality", "characteristic": "diameter_mm", "value": value, "lsl": 31.9, "usl": 32.1}
        messages.append({**ENVELOPE, "ts": START + i * 1000, **part})
        # A sensor with the same extremes: its statistics' sums of squares overflow too.
        sensor = {"kind": "sensor", "signal": "probe_mm", "value": value}
        messages.append({**ENVELOPE, "ts": START + i * 1000 + 500, **sensor})
    for message in messages:
        out = processor.process(b"demo/M01", orjson.dumps(message), timestamp_ms=None, load_state=states.get)
        assert not isinstance(out, Rejection), out
        states["demo/M01"] = decode_state(encode_state(out.state)) if through_table else out.state
        records += [record_bytes(record) for record in (*out.kpis, *out.alerts)]
    return records, states["demo/M01"]


def test_a_restart_after_every_message_gives_the_live_states_records_and_state() -> None:
    live_records, live = _run(through_table=False)
    table_records, restored = _run(through_table=True)
    assert any(not math.isfinite(stats.m2) for stats in live.capability.values())  # the case is exercised
    assert table_records == live_records
    # The table's own form, which tells an infinity from NaN (to_dict's JSON would write both as null).
    assert encode_state(restored) == encode_state(live)
    # The statistics' sums of squares overflowed, and came back as infinities, not NaN.
    assert "inf" in live.to_dict()["signals"]["probe_mm"]
    for name, vector in live.signals.items():
        assert np.array_equal(restored.signals[name], vector, equal_nan=True), name
    assert decode_state(encode_state(live)).capability.keys() == live.capability.keys()
