"""The shared processing path: offset idempotency, state round trips and the analyze command."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from prometheus_client import generate_latest

from models.machine_state import MachineState
from models.plant import PlantConfig
from service.cli import main
from service.metrics import build_registry
from service.plant_file import load_demo_plant
from service.simulator import PlantSimulator
from streams.decode import Rejection
from streams.live import LiveMachines
from streams.processing import Applied, TelemetryProcessor, decode_state, encode_state

HOUR_MS = 3_600_000


# A fixed start: the simulator follows the plant's clock (shifts, breaks), so data started at "now
# minus 30 h" differed with the time of day the tests ran, and a test that looked for a kind of
# message in it failed at some hours. Monday 2026-11-23 09:00 in Seoul, mid day shift.
SIMULATION_START_MS = 1_795_392_000_000


def simulated(count: int, seed: int = 3) -> list[bytes]:
    simulator = PlantSimulator(load_demo_plant(), seed=seed, start_ms=SIMULATION_START_MS)
    values = []
    for record in simulator.events(SIMULATION_START_MS + 30 * HOUR_MS):
        values.append(orjson.dumps(record))
        if len(values) == count:
            break
    return values


def key(value: bytes) -> bytes:
    record = orjson.loads(value)
    return f"{record['tenant']}/{record['machine']}".encode()


@pytest.fixture
def processor() -> TelemetryProcessor:
    return TelemetryProcessor(load_demo_plant(), max_payload_bytes=1 << 20, max_future_ms=300_000)


def run(
    processor: TelemetryProcessor,
    values: list[bytes],
    states: dict[str, MachineState],
    *,
    offsets: range | None = None,
    through_table: bool = False,
) -> list[Applied]:
    applied = []
    now = int(time.time() * 1000)
    offsets = offsets or range(len(values))
    for offset, value in zip(offsets, values, strict=True):
        outcome = processor.process(
            key(value), value, timestamp_ms=now, load_state=states.get, source="t:0", offset=offset
        )
        assert isinstance(outcome, Applied)
        applied.append(outcome)
        # A restart recovers the state from the table's bytes, not from the live object.
        states[outcome.state.key] = (
            decode_state(encode_state(outcome.state)) if through_table else outcome.state
        )
    return applied


def totals(states: dict[str, MachineState]) -> dict[str, dict[str, int]]:
    return {name: state.totals.to_dict() for name, state in sorted(states.items())}


def test_redelivered_offsets_change_nothing(processor: TelemetryProcessor) -> None:
    values = simulated(3000)
    once: dict[str, MachineState] = {}
    run(processor, values, once)
    replayed: dict[str, MachineState] = {}
    run(processor, values[:2000], replayed)
    # At-least-once delivery after a crash: the consumer rewinds to offset 1500 and reads on.
    second = run(processor, values[1500:], replayed, offsets=range(1500, 3000))
    assert sum(outcome.duplicate for outcome in second) == 500
    assert totals(replayed) == totals(once)


def test_state_recovered_from_table_bytes_gives_the_same_records(processor: TelemetryProcessor) -> None:
    values = simulated(4000, seed=5)
    live = run(processor, values, {})
    recovered = run(processor, values, {}, through_table=True)
    assert [o.kpis for o in live] == [o.kpis for o in recovered]
    assert [o.alerts for o in live] == [o.alerts for o in recovered]
    assert sum(len(o.kpis) for o in live) > 0


def test_analyze_writes_kpis_alerts_and_dead_letters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values = simulated(5000, seed=9)
    bad = [b"{not json", b'{"v":1,"kind":"count"}', "\u00ff".encode("latin-1")]
    source = tmp_path / "telemetry.jsonl"
    source.write_bytes(b"\n".join(values[:100] + bad + values[100:]) + b"\n\n")
    out = tmp_path / "out"
    assert main(["analyze", str(source), "--out", str(out)]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["applied"] == 5000 and summary["dead_letters"] == 3
    dead = [orjson.loads(line) for line in (out / "dead_letters.jsonl").read_bytes().splitlines()]
    assert [entry["line"] for entry in dead] == [101, 102, 103]
    assert dead[0]["raw"] == "{not json" and dead[0]["code"] == "invalid_json"
    assert dead[2]["raw_base64"] == "/w=="  # not UTF-8: kept byte for byte
    kpis = [orjson.loads(line) for line in (out / "kpis.jsonl").read_bytes().splitlines()]
    assert any(record["complete"] for record in kpis) and any(not record["complete"] for record in kpis)
    for record in kpis:
        parts = (record["availability"], record["performance"], record["quality"])
        if None not in parts:
            assert record["oee"] == parts[0] * parts[1] * parts[2]
        else:
            assert record["oee"] is None


def test_analyze_closes_a_silent_machines_hours_as_the_stream_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """M01 runs ten minutes and goes silent while M02 reports for three hours: analyze ticks M01
    by its partition's stream time (close_silent_after_s), so its ended hours are complete records
    when M02 shares its partition."""
    hour_ms = 3_600_000
    start = (int(time.time() * 1000) // hour_ms - 6) * hour_ms

    def event(machine: str, offset_ms: int, **fields: object) -> bytes:
        base = {"v": 1, "tenant": "demo", "site": "p1", "line": "L1", "machine": machine}
        return orjson.dumps({**base, "ts": start + offset_ms, **fields})

    lines = [event("M01", 0, kind="state", state="running"), event("M01", 600_000, kind="count", good=90)]
    lines += [event("M02", minute * 60_000, kind="count", good=1) for minute in range(0, 181)]
    source = tmp_path / "telemetry.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")

    def silent_hours(partitions: int) -> list[tuple[int, int, int]]:
        out = tmp_path / f"out-{partitions}"
        assert main(["analyze", str(source), "--out", str(out), "--partitions", str(partitions)]) == 0
        capsys.readouterr()
        kpis = [orjson.loads(line) for line in (out / "kpis.jsonl").read_bytes().splitlines()]
        hours = [r for r in kpis if r["machine"] == "M01" and r["window"] == "hour" and r["complete"]]
        return [(r["start_ms"] - start, r["run_s"], r["unknown_s"]) for r in hours]

    # One partition: M02's readings are M01's partition's stream time.
    assert silent_hours(1) == [(0, 1500, 2100), (hour_ms, 0, 3600)]
    # Three: demo/M01 is on partition 1 and demo/M02 on 0 (murmur2), so nothing moves M01's
    # partition's time past its own last event, as in the worker: its hours stay open.
    assert silent_hours(3) == []


def test_analyze_reports_a_bad_config_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "t.jsonl"
    source.write_bytes(b"")
    config = tmp_path / "plant.yaml"
    config.write_text("timezone: Nowhere/Land\nmachines: []\n")
    assert main(["analyze", str(source), "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert str(config) in error and "timezone" in error and "Traceback" not in error


def test_a_processing_bug_dead_letters_the_message_instead_of_stalling(
    processor: TelemetryProcessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = simulated(50, seed=4)
    states: dict[str, MachineState] = {}
    run(processor, values[:10], states)

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(processor, "_apply", broken)
    outcome = processor.process(
        key(values[10]),
        values[10],
        timestamp_ms=int(time.time() * 1000),
        load_state=states.get,
        source="t:0",
        offset=10,
    )
    assert isinstance(outcome, Rejection)
    assert outcome.code == "processing_error" and "ZeroDivisionError: a bug" in outcome.reason
    assert (
        outcome.machine_key == orjson.loads(values[10])["tenant"] + "/" + orjson.loads(values[10])["machine"]
    )


def test_a_machine_moved_to_another_line_keeps_its_history_under_the_new_labels() -> None:
    """The plant file moved M01 from L1 to L2: its KPI records said L2, /metrics and /api kept L1."""
    before = load_demo_plant()
    moved = PlantConfig.model_validate(
        {
            **before.model_dump(),
            "machines": [
                {**m.model_dump(), "line": "L2"} if m.id == "M01" else m.model_dump() for m in before.machines
            ],
        }
    )
    ts = int(time.time() * 1000) - 60_000
    record = {"v": 1, "tenant": "demo", "site": "p1", "machine": "M01", "kind": "count", "good": 3}
    states: dict[str, MachineState] = {}
    for offset, (plant, line) in enumerate([(before, "L1"), (moved, "L2")]):
        processor = TelemetryProcessor(plant, max_payload_bytes=1 << 20, max_future_ms=300_000)
        value = orjson.dumps({**record, "line": line, "ts": ts + offset})
        outcome = processor.process(
            b"demo/M01", value, timestamp_ms=None, load_state=states.get, source="t:0", offset=offset
        )
        assert isinstance(outcome, Applied)
        states["demo/M01"] = outcome.state
    state = states["demo/M01"]
    assert (state.site, state.line, state.totals.good) == ("p1", "L2", 6)  # one machine, its history kept
    live = LiveMachines({m.key for m in moved.machines})
    live.update(state)
    registry, _ = build_registry(live, moved)
    exposed = generate_latest(registry).decode()
    assert 'linepulse_good_units_total{line="L2",machine="M01",site="p1",tenant="demo"} 6.0' in exposed
    assert 'line="L1",machine="M01"' not in exposed


def test_analyze_counts_the_lines_too_late_for_any_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """They are applied (totals) but in no window: the summary said only `applied`."""
    base = {"v": 1, "tenant": "demo", "site": "p1", "line": "L1", "machine": "M01"}
    ts = 1_795_554_000_000
    lines = [
        {**base, "ts": ts, "kind": "state", "state": "running"},
        {**base, "ts": ts + 600_000, "kind": "count", "good": 5},
        {**base, "ts": ts + 60_000, "kind": "count", "good": 2},  # 9 minutes late, none allowed
        {**base, "ts": ts + 120_000, "kind": "count", "good": 1},
    ]
    source = tmp_path / "late.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    assert main(["analyze", str(source), "--out", str(tmp_path / "out")]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert (summary["applied"], summary["too_late"], summary["dead_letters"]) == (4, 2, 0)
