"""The plant simulator: contract validity, determinism, behaviour, faults, pacing, sinks and CLI."""

from __future__ import annotations

import argparse
import itertools
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from models.plant import PlantConfig
from service.simulator import (
    FaultKind,
    JsonlSink,
    KafkaSink,
    Pacer,
    PlantSimulator,
    Record,
    SimOptions,
    commands,
    load_demo_plant,
    parse_fault_spec,
    random_faults,
    resolve_faults,
    run,
)
from service.simulator.break_schedule import BreakSchedule
from service.simulator.timeparse import format_duration, parse_duration_ms, parse_start
from streams.contract import telemetry_adapter

HOUR = 3_600_000
# A Monday 05:00 in Seoul: the run crosses the night/day shift change, breaks and lunch.
START = round(datetime.fromisoformat("2026-03-02T05:00:00+09:00").timestamp() * 1000)
RUN_MS = 10 * HOUR


@pytest.fixture(scope="module")
def plant() -> PlantConfig:
    return load_demo_plant()


@pytest.fixture(scope="module")
def fault_specs() -> list[str]:
    return ["stoppage@M02@1h+45m", "scrap_spike@M03@6h+90m", "sensor_drift@M04:spindle_temp@2h+2h"]


@pytest.fixture(scope="module")
def simulated(plant: PlantConfig, fault_specs: list[str]) -> tuple[PlantSimulator, list[Record]]:
    faults = resolve_faults([parse_fault_spec(spec) for spec in fault_specs], plant, START)
    sim = PlantSimulator(plant, seed=7, start_ms=START, faults=faults)
    return sim, list(sim.events(START + RUN_MS))


@pytest.fixture(scope="module")
def records(simulated: tuple[PlantSimulator, list[Record]]) -> list[Record]:
    return simulated[1]


def _ts(record: Mapping[str, object]) -> int:
    value = record["ts"]
    assert isinstance(value, int)
    return value


# -- contract and shape ----------------------------------------------------------------------------


def test_every_record_validates_against_the_contract(records: list[Record]) -> None:
    for record in records:
        telemetry_adapter.validate_python(record)
    kinds = Counter(record["kind"] for record in records)
    assert set(kinds) == {"state", "count", "cycle", "samples", "quality"}


def test_all_machines_appear_with_their_line(plant: PlantConfig, records: list[Record]) -> None:
    seen = {(record["line"], record["machine"]) for record in records}
    assert seen == {(machine.line, machine.id) for machine in plant.machines}


def test_records_are_time_ordered_and_seq_increases_per_machine(records: list[Record]) -> None:
    stamps = [_ts(record) for record in records]
    assert stamps == sorted(stamps)
    assert all(START <= stamp < START + RUN_MS for stamp in stamps)
    per_machine: dict[object, list[object]] = {}
    for record in records:
        per_machine.setdefault(record["machine"], []).append(record["seq"])
    for seqs in per_machine.values():
        assert seqs == list(range(len(seqs)))


def test_states_cover_several_kinds_including_planned_stops(records: list[Record]) -> None:
    states = Counter(
        (record["state"], record.get("reason")) for record in records if record["kind"] == "state"
    )
    kinds = {state for state, _ in states}
    assert {"running", "idle", "down", "planned_stop", "setup"} <= kinds
    assert ("planned_stop", "lunch") in states
    assert ("planned_stop", "break") in states
    assert ("idle", "micro_stop") in states


def test_machines_with_two_products_change_over(records: list[Record]) -> None:
    m02_products = {r.get("product") for r in records if r["machine"] == "M02" and r["kind"] == "cycle"}
    assert m02_products == {"SH-100", "SH-200"}
    assert any(r["machine"] == "M02" and r.get("reason") == "changeover" for r in records)


def test_samples_are_batched_one_hertz_readings(records: list[Record]) -> None:
    batch = next(r for r in records if r["kind"] == "samples" and r["machine"] == "M02")
    signals: Any = batch["signals"]
    assert {series["signal"] for series in signals} == {"spindle_temp", "vibration_rms", "current"}
    stamps = signals[0]["ts"]
    assert len(stamps) >= 10
    assert all(later - earlier == 1_000 for earlier, later in itertools.pairwise(stamps))


def test_heartbeats_keep_every_machine_visible(plant: PlantConfig, records: list[Record]) -> None:
    # No machine stays silent about its state for longer than the heartbeat (5 min).
    for machine in plant.machines:
        stamps = [_ts(r) for r in records if r["machine"] == machine.id and r["kind"] == "state"]
        gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
        assert max(gaps) <= SimOptions().heartbeat_ms


# -- determinism ---------------------------------------------------------------------------------------


def test_same_seed_gives_identical_output(plant: PlantConfig) -> None:
    def serialised(seed: int) -> bytes:
        sim = PlantSimulator(plant, seed=seed, start_ms=START)
        return b"".join(orjson.dumps(record) for record in sim.events(START + HOUR))

    assert serialised(3) == serialised(3)
    assert serialised(3) != serialised(4)


def test_resumed_generation_equals_one_pass(plant: PlantConfig) -> None:
    one = list(PlantSimulator(plant, seed=5, start_ms=START).events(START + HOUR))
    sim = PlantSimulator(plant, seed=5, start_ms=START)
    pieces: list[Record] = []
    for step in range(1, 13):
        pieces.extend(sim.events(START + step * HOUR // 12))
    assert pieces == one


def test_rfc3339_timestamps_carry_the_plant_offset(plant: PlantConfig) -> None:
    sim = PlantSimulator(plant, seed=1, start_ms=START, options=SimOptions(ts_format="rfc3339"))
    batch = list(sim.events(START + 60_000))
    assert isinstance(batch[0]["ts"], str) and batch[0]["ts"].endswith("+09:00")
    assert all(telemetry_adapter.validate_python(record).ts >= START for record in batch)


# -- faults ----------------------------------------------------------------------------------------------


def test_stoppage_holds_the_machine_down_for_its_window(records: list[Record]) -> None:
    begin, end = START + HOUR, START + HOUR + 45 * 60_000
    m02 = [r for r in records if r["machine"] == "M02" and r["kind"] == "state"]
    inside = [r for r in m02 if begin <= _ts(r) < end]
    assert inside[0]["ts"] == begin
    assert {(r["state"], r.get("reason")) for r in inside} == {("down", "breakdown")}
    assert not any(r["kind"] == "cycle" and begin < _ts(r) < end for r in records if r["machine"] == "M02")
    after = next(r for r in m02 if _ts(r) >= end)
    assert after["state"] != "down"


def test_scrap_spike_raises_the_scrap_ratio(records: list[Record]) -> None:
    begin, end = START + 6 * HOUR, START + 7 * HOUR + 30 * 60_000

    def ratio(inside: bool) -> float:
        counts = [
            r
            for r in records
            if r["machine"] == "M03" and r["kind"] == "count" and (begin <= _ts(r) < end) == inside
        ]
        good = sum(int(str(r["good"])) for r in counts)
        scrap = sum(int(str(r["scrap"])) for r in counts)
        return scrap / (good + scrap)

    assert ratio(inside=True) > 0.15
    assert ratio(inside=False) < 0.06


def test_sensor_drift_moves_the_signal_mean(records: list[Record]) -> None:
    def mean_running(low: int, high: int) -> float:
        values: list[float] = []
        for record in records:
            if record["machine"] == "M04" and record["kind"] == "samples" and low <= _ts(record) < high:
                series: Any = record["signals"]
                values += next(s["values"] for s in series if s["signal"] == "spindle_temp")
        return sum(values) / len(values)

    # Last 20 minutes of the drift versus the 20 minutes after it ended (same thermal regime, no drift).
    drift_end = START + 4 * HOUR
    assert (
        mean_running(drift_end - 1_200_000, drift_end) > mean_running(drift_end, drift_end + 1_200_000) + 0.3
    )


def test_fault_spec_parsing_and_resolution(plant: PlantConfig) -> None:
    spec = parse_fault_spec("sensor_drift@M02:current@1h30m+20m")
    assert (spec.kind, spec.machine, spec.signal) == (FaultKind.SENSOR_DRIFT, "M02", "current")
    assert (spec.offset_ms, spec.duration_ms) == (5_400_000, 1_200_000)
    (fault,) = resolve_faults([parse_fault_spec("anomaly_burst@demo/M05@0+5m")], plant, START)
    assert (fault.line, fault.start_ms, fault.end_ms) == ("L2", START, START + 300_000)
    with pytest.raises(
        ValueError, match=r"machine 'M99' is not in the plant configuration \(it has demo/M01, "
    ):
        resolve_faults([parse_fault_spec("stoppage@M99@1h+1h")], plant, START)
    with pytest.raises(ValueError, match="no signal"):
        resolve_faults([parse_fault_spec("sensor_drift@M01:nope@1h+1h")], plant, START)


# -- pacing ------------------------------------------------------------------------------------------------


class FakeClock:
    """Real time that only moves when the code under test sleeps."""

    def __init__(self, wall_ms: int) -> None:
        self.wall = wall_ms
        self.mono = 100.0
        self.sleeps = 0

    def wall_ms(self) -> int:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.mono += seconds
        self.wall += round(seconds * 1000)
        self.sleeps += 1


class RecordingSink:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.records: list[Mapping[str, object]] = []
        self.written_at: list[int] = []
        self.flushes = 0

    def write(self, record: Mapping[str, object]) -> None:
        self.records.append(record)
        self.written_at.append(self.clock.wall_ms())

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        self.flush()


def test_pacer_runs_fast_then_caps_at_real_now() -> None:
    clock = FakeClock(wall_ms=START + HOUR)
    pacer = Pacer(clock, sim_start_ms=START, speed=60.0)
    assert pacer.allowed_ms() == START
    clock.sleep(30)  # 30 real seconds at 60x: 30 simulated minutes
    assert pacer.allowed_ms() == START + HOUR // 2
    assert pacer.seconds_until(START + HOUR // 2 + 60_000) == pytest.approx(1.0)
    clock.sleep(600)  # long past catching up: live, capped at the wall clock
    assert pacer.allowed_ms() == clock.wall_ms()
    assert pacer.seconds_until(clock.wall_ms() + 2_000) == pytest.approx(2.0)


def test_paced_run_never_emits_future_timestamps(plant: PlantConfig) -> None:
    clock = FakeClock(wall_ms=START + 20 * 60_000)
    sink = RecordingSink(clock)
    sim = PlantSimulator(plant, seed=2, start_ms=START)
    stats = run(sim, sink, speed=600.0, end_ms=START + 30 * 60_000, clock=clock)
    assert stats.stopped == "duration"
    assert stats.events == len(sink.records) > 0
    assert all(_ts(r) <= wall for r, wall in zip(sink.records, sink.written_at, strict=True))
    # The 20-minute backlog is caught up in ~2 real seconds; the rest is live, so the run ends when the
    # wall clock reaches the end of the simulated half hour: ~10 real minutes after starting.
    assert clock.mono - 100.0 == pytest.approx(600.0, abs=15.0)
    early = [
        r for r, wall in zip(sink.records, sink.written_at, strict=True) if wall < START + 20 * 60_000 + 3_000
    ]
    assert _ts(early[-1]) >= START + 19 * 60_000  # the backlog went out within the first 3 real seconds
    assert sink.flushes > 0


def test_as_fast_as_possible_still_stops_at_now(plant: PlantConfig) -> None:
    clock = FakeClock(wall_ms=START + 10 * 60_000)
    sink = RecordingSink(clock)
    sim = PlantSimulator(plant, seed=2, start_ms=START)
    stats = run(sim, sink, speed=None, max_events=2_000, clock=clock)
    assert stats.stopped == "max_events" and len(sink.records) == 2_000
    assert all(_ts(r) <= wall for r, wall in zip(sink.records, sink.written_at, strict=True))
    assert clock.sleeps > 0  # it had to wait for real time once it reached "now"


# -- sinks ---------------------------------------------------------------------------------------------------


def test_jsonl_sink_and_truth_file(plant: PlantConfig, tmp_path: Path) -> None:
    faults = resolve_faults([parse_fault_spec("stoppage@M01@2m+5m")], plant, START)
    sim = PlantSimulator(plant, seed=1, start_ms=START, faults=faults)
    out, truth_path = tmp_path / "telemetry.jsonl", tmp_path / "truth.jsonl"
    sink, truth = JsonlSink(out), JsonlSink(truth_path)
    try:
        stats = run(sim, sink, speed=None, end_ms=START + 30 * 60_000, max_events=500, truth=truth)
    finally:
        sink.close()
        truth.close()
    lines = out.read_bytes().splitlines()
    assert len(lines) == stats.events == 500
    for line in lines:
        telemetry_adapter.validate_json(line)
    (fault,) = [orjson.loads(line) for line in truth_path.read_bytes().splitlines()]
    assert fault["kind"] == "stoppage" and fault["machine"] == "M01"
    assert (fault["start_ms"], fault["end_ms"]) == (START + 120_000, START + 420_000)
    assert fault["start"].endswith("+09:00")


def test_kafka_sink_keys_by_tenant_and_machine() -> None:
    class FakeProducer:
        def __init__(self, **config: Any) -> None:
            self.config = config
            self.sent: list[tuple[str, bytes, bytes]] = []
            self.flushed = self.closed = False

        def send(self, topic: str, key: bytes, value: bytes) -> None:
            self.sent.append((topic, key, value))

        def flush(self) -> None:
            self.flushed = True

        def close(self) -> None:
            self.closed = True

    producers: list[FakeProducer] = []

    def factory(**config: Any) -> FakeProducer:
        producers.append(FakeProducer(**config))
        return producers[-1]

    sink = KafkaSink("127.0.0.1:9092", "telemetry", linger_ms=5, producer_factory=factory)
    record = {
        "v": 1,
        "tenant": "demo",
        "site": "p1",
        "line": "L1",
        "machine": "M01",
        "ts": START,
        "kind": "x",
    }
    sink.write(record)
    sink.close()
    (producer,) = producers
    assert producer.config["acks"] == "all" and producer.config["linger_ms"] == 5
    assert producer.sent == [("telemetry", b"demo/M01", orjson.dumps(record))]
    assert producer.flushed and producer.closed


# -- configuration and CLI -----------------------------------------------------------------------------------


def test_demo_plant_and_its_calendar(plant: PlantConfig) -> None:
    assert plant.timezone == "Asia/Seoul"
    assert {m.line for m in plant.machines} == {"L1", "L2"}
    assert plant.classify("idle", "micro_stop") == "performance"
    assert plant.classify("setup", "changeover") == "availability"
    calendar = BreakSchedule(plant)
    lunch = round(datetime.fromisoformat("2026-03-02T10:40:00+09:00").timestamp() * 1000)
    window = calendar.window_at(lunch)
    assert window is not None and window.reason == "lunch"
    assert calendar.window_at(lunch + HOUR) is None


def test_time_parsing() -> None:
    assert parse_duration_ms("1h30m") == 5_400_000
    assert parse_duration_ms("1.5s") == 1_500
    assert parse_start("now-2h").resolve(10 * HOUR) == 8 * HOUR
    assert parse_start("-30m").resolve(HOUR) == HOUR // 2
    assert parse_start("2026-03-02T05:00:00+09:00").resolve(0) == START
    for bad in ("", "5x", "h", "0"):
        with pytest.raises(ValueError):
            parse_duration_ms(bad)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linepulse")
    commands.register(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.mark.parametrize(
    ("argv", "option", "reason"),
    [
        (["--speed", "0"], "--speed", "positive"),
        (["--speed", "fast"], "--speed", "not a number"),
        (["--duration", "5x"], "--duration", "not a duration"),
        (["--start", "yesterday"], "--start", "RFC 3339"),
        (["--fault", "meltdown@M01@1h+1h"], "--fault", "unknown fault kind"),
        (["--fault", "stoppage@M01@1h"], "--fault", "KIND@MACHINE@START+DURATION"),
        (["--max-events", "0"], "--max-events", "at least 1"),
        (["--bootstrap-servers", "nohost"], "--bootstrap-servers", "HOST:PORT"),
    ],
)
def test_cli_errors_name_the_option(
    argv: list[str], option: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["simulate", *argv])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert f"argument {option}" in message and reason in message


def test_cli_rejects_a_fault_on_an_unknown_machine(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["simulate", "--fault", "stoppage@M42@1h+1h", "--out", "/dev/null"])
    assert args.handler(args) == 2
    assert "--fault: machine 'M42' is not in the plant configuration" in capsys.readouterr().err


def test_cli_rejects_a_fault_after_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--duration", "1h", "--fault", "sensor_drift@M04:spindle_temp@1h+10m"]
    args = _parser().parse_args([*argv, "--out", "/dev/null"])
    assert args.handler(args) == 2
    err = capsys.readouterr().err
    assert "--fault: sensor_drift@M04:spindle_temp@1h+10m starts at or after the end of the run" in err
    assert "(--duration 1h)" in err


@pytest.mark.parametrize(
    "start",
    [
        "1999-12-31T23:59:59Z",
        "-10000d",
        "2100-01-01T00:00:00Z",
        # Instants without a year from 1 to 9999: the message formatting them was a traceback.
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
    ],
)
def test_cli_rejects_a_start_the_decoder_would_reject(start: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["simulate", f"--start={start}", "--duration", "1h", "--out", "/dev/null"])
    assert args.handler(args) == 2
    err = capsys.readouterr().err
    assert "--start:" in err and "2000-01-01 to 2100-01-01" in err


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--duration", "9" * 400 + "d"),
        ("--start", "-" + "9" * 400 + "d"),
        ("--start", "-3000000d"),
        ("--fault", "stoppage@M01@1h+" + "9" * 400 + "h"),
    ],
)
def test_absurd_durations_are_named_not_a_traceback(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hundreds of digits reached float infinity, which round() could not convert (OverflowError)."""
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["simulate", f"{option}={value}", "--out", "/dev/null"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}:" in err and "longer than 100 years" in err, err


def test_durations_format_as_they_parse() -> None:
    for text in ("1h30m", "2d", "45s", "1h0m5s250ms", "0"):
        millis = parse_duration_ms(text, allow_zero=True)
        assert parse_duration_ms(format_duration(millis), allow_zero=True) == millis
    assert format_duration(5_400_000) == "1h30m"


def test_cli_writes_telemetry_and_truth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, truth = tmp_path / "t.jsonl", tmp_path / "truth.jsonl"
    argv = ["simulate", "--start=-2h", "--duration", "20m", "--as-fast-as-possible", "--seed", "9"]
    argv += [
        "--out",
        str(out),
        "--truth",
        str(truth),
        "--fault",
        "stoppage@M03@5m+5m",
        "--random-faults",
        "2",
    ]
    args = _parser().parse_args(argv)
    assert args.handler(args) == 0
    lines = out.read_bytes().splitlines()
    assert len(lines) > 100
    assert {telemetry_adapter.validate_json(line).machine for line in lines} == {
        "M01",
        "M02",
        "M03",
        "M04",
        "M05",
    }
    kinds = [orjson.loads(line)["kind"] for line in truth.read_bytes().splitlines()]
    assert "stoppage" in kinds and len(kinds) == 3
    assert "(duration)" in capsys.readouterr().err


def test_cli_reports_a_bad_plant_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text("timezone: Mars/Olympus\nmachines: []\n", encoding="utf-8")
    args = _parser().parse_args(["simulate", "--config", str(plant_file), "--out", "/dev/null"])
    assert args.handler(args) == 2
    # As every command says it: the file, the field and the reason (the file may come from --config
    # or LINEPULSE_PLANT_CONFIG, so neither is named).
    err = capsys.readouterr().err
    assert err.startswith(f"linepulse: error: {plant_file}: timezone: ") and "Mars/Olympus" in err, err


def test_random_faults_are_deterministic_and_inside_the_horizon(plant: PlantConfig) -> None:
    first = random_faults(plant, seed=11, start_ms=START, horizon_ms=8 * HOUR, count=6)
    assert first == random_faults(plant, seed=11, start_ms=START, horizon_ms=8 * HOUR, count=6)
    assert len(first) == 6
    assert all(START + HOUR // 2 <= f.start_ms < f.end_ms <= START + 8 * HOUR for f in first)
    assert all((f.signal is not None) == (f.kind is FaultKind.SENSOR_DRIFT) for f in first)
