"""``machine_stopped`` for machines that report only state changes: judged on the partition's stream
time (the engine, the stop watch, the worker's batches and ``analyze``), and a stop that ended
before any stream time judged it raised when the machine's own next event arrives."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from faust.types import Message

from models.machine import MachineEngine
from models.plant import PlantConfig
from service.analyze import analyze_file
from service.metrics import build_registry
from service.settings import Settings
from streams.batch import BatchApplier
from streams.live import LiveLines, LiveMachines
from streams.processing import Applied, TelemetryProcessor
from streams.state_table import StateTable
from streams.stop_watch import StopWatch
from streams.stream_time import StreamTime
from tests.unit.faust_tables import memory_table, write_acknowledged

T0 = 1_795_600_000_000  # 2026-11-25 09:46:40 UTC
MIN = 60_000
PLANT = {
    "timezone": "Europe/Berlin",
    "machines": [
        {"tenant": "t", "site": "s", "line": "L", "id": "A", "ideal_cycle_s": 10.0},
        {"tenant": "t", "site": "s", "line": "L", "id": "B", "ideal_cycle_s": 10.0},
    ],
}


def plant(**extra: Any) -> PlantConfig:
    return PlantConfig.model_validate({**PLANT, **extra})


def event(machine: str, at_ms: int, **fields: Any) -> bytes:
    base = {"v": 1, "tenant": "t", "site": "s", "line": "L", "machine": machine, "ts": at_ms}
    return orjson.dumps({**base, **fields})


def breakdown(up_after_ms: int, then: str = "running", others_every_ms: int | None = MIN) -> list[bytes]:
    """The reviewer's scenario: A and B run; A breaks down at 1 min and reports nothing until its
    stop ends ``up_after_ms`` later (as ``then``); B sends a reading every ``others_every_ms``."""
    end = MIN + up_after_ms
    lines = [event("A", T0, kind="state", state="running"), event("B", T0, kind="state", state="running")]
    lines.append(event("A", T0 + MIN, kind="state", state="down", reason="breakdown"))
    if others_every_ms is not None:
        lines += [
            event("B", T0 + at, kind="sensor", signal="v", value=1.0)
            for at in range(MIN, end + 2 * MIN, others_every_ms)
            if at < end
        ]
    lines.append(event("A", T0 + end, kind="state", state=then))
    if others_every_ms is not None:
        lines += [
            event("B", T0 + at, kind="sensor", signal="v", value=1.0) for at in range(end, end + 2 * MIN, MIN)
        ]
    return lines


def analyze(tmp_path: Path, lines: list[bytes], config: PlantConfig) -> list[dict[str, Any]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "telemetry.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    # One partition: B's readings are the stream time of A's partition, as on a shared partition.
    analyze_file(source, config, out, Settings(partitions=1))
    return [orjson.loads(line) for line in (out / "alerts.jsonl").read_bytes().splitlines()]


def kpis(tmp_path: Path, name: str, lines: list[bytes], config: PlantConfig) -> list[bytes]:
    source = tmp_path / f"{name}.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / name
    analyze_file(source, config, out, Settings(partitions=1))
    return (out / "kpis.jsonl").read_bytes().splitlines()


def test_a_ten_minute_breakdown_reported_by_state_changes_alerts_after_down_after_s_of_stream_time(
    tmp_path: Path,
) -> None:
    alerts = analyze(tmp_path, breakdown(10 * MIN), plant())
    assert [(a["machine"], a["kind"], a["status"]) for a in alerts] == [
        ("A", "machine_stopped", "open"),
        ("A", "machine_stopped", "resolved"),
    ]
    opened, resolved = alerts
    assert opened["id"] == resolved["id"]
    assert opened["severity"] == "critical"
    assert opened["started_at"] == "2026-11-25T10:47:40+01:00"  # the stop's start, not the judgement
    # Judged at B's reading 5 min into the stop (stream time), not when A ran again.
    assert opened["evidence"] == {
        "state": "down",
        "reason": "breakdown",
        "stopped_s": 300.0,
        "measured_on": "stream_time",
    }
    assert resolved["updated_at"] == "2026-11-25T10:57:40+01:00"  # when A ran again


def test_stream_time_judges_at_most_one_message_late(tmp_path: Path) -> None:
    """B reports every 70 s: the first of B's readings at or past the deadline opens the alert."""
    alerts = analyze(tmp_path, breakdown(10 * MIN, others_every_ms=70_000), plant())
    assert alerts[0]["status"] == "open"
    assert alerts[0]["evidence"]["stopped_s"] == 350.0  # B's reading at 1 min + 350 s


def test_a_stop_ended_by_offline_before_any_stream_time_judged_it_is_raised_and_resolved(
    tmp_path: Path,
) -> None:
    """Down 14 min, then offline, and no other machine on the partition: the stop is judged when A's
    own next event arrives, so the manager still learns of it."""
    alerts = analyze(tmp_path, breakdown(14 * MIN, then="offline", others_every_ms=None), plant())
    assert [(a["kind"], a["status"]) for a in alerts] == [
        ("machine_stopped", "open"),
        ("machine_stopped", "resolved"),
    ]
    opened, resolved = alerts
    assert opened["started_at"] == "2026-11-25T10:47:40+01:00"
    assert opened["evidence"]["stopped_s"] == 840.0
    assert opened["evidence"]["measured_on"] == "machine_time"
    assert opened["message"] == "A down (breakdown) for 14 min"
    assert resolved["updated_at"] == "2026-11-25T11:01:40+01:00"


def test_a_short_stop_raises_nothing(tmp_path: Path) -> None:
    assert analyze(tmp_path, breakdown(4 * MIN), plant()) == []
    assert analyze(tmp_path / "alone", breakdown(4 * MIN, others_every_ms=None), plant()) == []


def test_a_stop_then_silence_alerts_on_stream_time_even_without_the_silence_clock(tmp_path: Path) -> None:
    lines = breakdown(30 * MIN)[:-3]  # A never reports again; B goes on
    alerts = analyze(tmp_path, lines, plant(close_silent_after_s=None))
    assert [(a["kind"], a["status"], a["evidence"]["stopped_s"]) for a in alerts] == [
        ("machine_stopped", "open", 300.0)
    ]


def test_a_stop_counts_only_while_its_state_is_believed(tmp_path: Path) -> None:
    """With down_after_s beyond state_timeout_s, a machine silent since its stop is unknown, not down,
    when stream time gets to the deadline: nothing to raise until it reports again."""
    config = plant(state_timeout_s=600, alerts={"down_after_s": 900}, close_silent_after_s=None)
    assert analyze(tmp_path, breakdown(30 * MIN)[:-3], config) == []


def test_judging_on_stream_time_leaves_every_kpi_record_as_it_was(tmp_path: Path) -> None:
    """The stop watch judges alerts only: the machines' time is accounted as before (so a stream's
    KPI records stay identical to analyze's whatever the other machines send)."""
    lines = breakdown(30 * MIN)
    config = plant(close_silent_after_s=None)  # no silence ticks: A's time moves only with A's events
    with_b = [line for line in kpis(tmp_path, "both", lines, config) if b'"machine":"A"' in line]
    only_a = [line for line in lines if b'"machine":"A"' in line]
    alone = [line for line in kpis(tmp_path, "a", only_a, config) if b'"machine":"A"' in line]
    assert with_b and with_b == alone
    assert analyze(tmp_path / "alerts", lines, config)  # and B's stream time did judge A's stop


def test_the_engine_opens_on_stream_time_without_accounting_the_machine() -> None:
    config = plant()
    engine = MachineEngine(config)
    spec = config.machines[0]
    state = engine.new_state(spec)
    engine.on_state(state, spec, T0, "down", "jam")
    before = {k: v for k, v in state.to_dict().items() if k != "alerts"}
    assert engine.stop_deadline(state) == T0 + 5 * MIN
    assert engine.on_stream_time(state, spec, T0 + 5 * MIN - 1).alerts == []
    [change] = engine.on_stream_time(state, spec, T0 + 6 * MIN).alerts
    assert (change.status, change.alert.started_ms, change.alert.evidence["stopped_s"]) == ("open", T0, 360.0)
    assert {k: v for k, v in state.to_dict().items() if k != "alerts"} == before
    assert engine.stop_deadline(state) is None  # alerted: nothing more to judge
    assert engine.on_stream_time(state, spec, T0 + 9 * MIN).alerts == []  # one alert, not one per check


def test_the_stop_watch_returns_each_scheduled_deadline_once_and_drops_stale_ones() -> None:
    watch, stream_time = StopWatch(), StreamTime()
    t0, t1, u0 = (0, "t"), (1, "t"), (0, "u")  # clocks: (partition, tenant)

    def advance(clock: tuple[int, str], event_ms: int) -> list[str]:
        return watch.due(clock, stream_time.advance(clock, event_ms))

    watch.schedule(t0, "t/A", 100)
    watch.schedule(t0, "t/B", 150)
    watch.schedule(t1, "t/C", 50)
    watch.schedule(u0, "u/D", 50)
    assert advance(t0, 99) == []
    watch.schedule(t0, "t/B", 300)  # B's stop ended and another began
    watch.schedule(t0, "t/A", None)  # A ran again
    assert advance(t0, 200) == []
    assert advance(t0, 120) == []  # stream time never goes back
    assert advance(t0, 300) == ["t/B"]
    assert advance(t0, 400) == []
    assert advance(t1, 50) == ["t/C"]  # another partition, another clock
    # Another tenant on the partition, another clock: D was not due at t/A's 99 or 400.
    assert advance(u0, 60) == ["u/D"]
    assert stream_time.ms == {t0: 400, t1: 50, u0: 60}
    watch.schedule(t0, "t/E", 350)  # a stop that began more than down_after_s behind stream time
    assert advance(t0, 380) == ["t/E"]  # due at once, though stream time did not move


# -- the worker's batches -------------------------------------------------------------------------


def messages(values: list[bytes], partition: int = 0, first_offset: int = 0) -> list[Message]:
    return [
        Message(
            topic="telemetry",
            partition=partition,
            offset=first_offset + i,
            timestamp=time.time(),  # CreateTime: produced now
            timestamp_type=0,
            headers=[],
            key=f"t/{orjson.loads(value)['machine']}".encode(),
            value=value,
            checksum=None,
        )
        for i, value in enumerate(values)
    ]


@pytest.fixture
def table(tmp_path: Path) -> Iterator[Any]:
    with memory_table(tmp_path, "stop-test", partitions=2) as table:
        yield table


def alert_records(outcomes: list[Any]) -> list[dict[str, Any]]:
    return [alert.model_dump(mode="json") for o in outcomes if isinstance(o, Applied) for alert in o.alerts]


@pytest.mark.parametrize("batch", [1, 2, 5, 1000])
def test_the_worker_gives_analyzes_alerts_whatever_the_batches(
    tmp_path: Path, table: Any, batch: int
) -> None:
    config = plant()
    lines = breakdown(10 * MIN, others_every_ms=20_000)
    expected = analyze(tmp_path, lines, config)
    processor = TelemetryProcessor(config, max_payload_bytes=1 << 20, max_future_ms=300_000)
    states = StateTable(table)
    applier = BatchApplier(processor, states, "telemetry")
    published: list[Any] = []
    for start in range(0, len(lines), batch):
        published += applier.in_order(applier.apply(messages(lines[start : start + batch], 0, start)))
        write_acknowledged(states)
    assert alert_records(published) == expected
    assert [a["status"] for a in expected] == ["open", "resolved"]


def test_a_restarted_worker_judges_the_stops_its_table_holds(tmp_path: Path, table: Any) -> None:
    """After a restart (or rebalance) the deadlines are gone with the process: the partition's
    stopped machines are scheduled again from the table at its first message."""
    config = plant()
    lines = breakdown(10 * MIN)
    processor = TelemetryProcessor(config, max_payload_bytes=1 << 20, max_future_ms=300_000)
    states = StateTable(table)
    first = BatchApplier(processor, states, "telemetry")
    assert alert_records(first.in_order(first.apply(messages(lines[:4], 1)))) == []  # up to 2 min
    write_acknowledged(states)
    states.clear()
    restarted = BatchApplier(processor, states, "telemetry")
    published = restarted.in_order(restarted.apply(messages(lines[4:], 1, 4)))
    assert [(a["machine"], a["status"]) for a in alert_records(published)] == [
        ("A", "open"),
        ("A", "resolved"),
    ]
    assert alert_records(published) == analyze(tmp_path, lines, config)


def test_alerts_judged_on_stream_time_are_counted_as_records_not_as_messages(table: Any) -> None:
    config = plant()
    processor = TelemetryProcessor(config, max_payload_bytes=1 << 20, max_future_ms=300_000)
    applier = BatchApplier(processor, StateTable(table), "telemetry")
    lines = breakdown(10 * MIN)[:9]  # up to B's reading at 6 min: the stop is judged, not ended
    outcomes = applier.apply(messages(lines))
    [(index, judged)] = applier.judged
    assert orjson.loads(lines[index])["machine"] == "B"  # B's reading at 5 min got A judged
    _, metrics = build_registry(LiveMachines(()), config, LiveLines())
    for outcome in outcomes:
        metrics.on_outcome(outcome)
    metrics.on_records(judged)
    assert metrics.alert_records.labels(status="open")._value.get() == 1
    assert metrics.messages.labels(result="applied")._value.get() == len(lines)


def test_a_lagging_reading_that_makes_a_judged_stop_believed_alerts_in_the_worker_as_in_analyze(
    tmp_path: Path, table: Any
) -> None:
    """A is down from 1 min; its stop is judged at 21 min of B's stream time (down_after_s 20 min),
    but A's state is believed only 15 min after its newest telemetry then: no alert, the deadline
    is dropped. A's gateway then sends a reading taken at 10 min, so its state is believed at 21
    min after all: analyze reschedules the stop after that line and alerts on stream time, and so
    must the worker (it once rescheduled only after messages that were not readings only, so it
    stayed silent, and a restart, which schedules every stored stop, changed its alerts)."""
    config = plant(alerts={"down_after_s": 1200}, state_timeout_s=900)
    lines = [event("A", T0, kind="state", state="running"), event("B", T0, kind="state", state="running")]
    lines.append(event("A", T0 + MIN, kind="state", state="down"))
    for at in range(10_000, 30 * MIN, 10_000):
        lines.append(event("B", T0 + at, kind="count", good=1))
        if at == 22 * MIN:
            lines.append(event("A", T0 + 10 * MIN, kind="sensor", signal="v", value=1.0))
    expected = analyze(tmp_path, lines, config)
    assert [(a["machine"], a["evidence"]["measured_on"]) for a in expected] == [("A", "stream_time")]
    processor = TelemetryProcessor(config, max_payload_bytes=1 << 20, max_future_ms=10**12)
    applier = BatchApplier(processor, StateTable(table), "telemetry")
    assert alert_records(applier.in_order(applier.apply(messages(lines)))) == expected
