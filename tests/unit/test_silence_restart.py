"""Silence ticks and stream time across a restart and a processing error: the worker's records are
those of a run without them (README: state survives kill -9 with totals unchanged)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from models.event_rank import RANK_COUNT, RANK_CYCLE
from models.machine import MachineEngine
from models.plant import PlantConfig
from streams.batch import BatchApplier
from streams.processing import Applied, TelemetryProcessor, decode_state
from streams.records import record_bytes
from streams.state_table import StateTable
from tests.unit.faust_tables import memory_table, write_acknowledged
from tests.unit.test_stream_time_per_tenant import MIN, T0, analyze, messages, plant

SEC = 1000
LAG = 20 * MIN  # M2's gateway sends its buffer this far behind: more than close_silent_after_s


def event(machine: str, at_ms: int, **fields: Any) -> bytes:
    base = {"v": 1, "tenant": "a", "site": "s", "line": "L", "machine": machine, "ts": T0 + at_ms}
    return orjson.dumps({**base, **fields})


def late_joiner() -> list[bytes]:
    """M1 live, a count every 10 s for an hour; M2 joins at 30:20, mid-minute, sending its buffer
    ``LAG`` behind, one count after each of M1's."""
    lines = [event("M1", 0, kind="state", state="running")]
    for step in range(1, 360):
        at = step * 10 * SEC
        lines.append(event("M1", at, kind="count", good=1))
        if at == 30 * MIN + 20 * SEC:
            lines.append(event("M2", at - LAG, kind="state", state="running"))
        elif at > 30 * MIN + 20 * SEC:
            lines.append(event("M2", at - LAG, kind="count", good=1))
    return lines


def break_record(monkeypatch: pytest.MonkeyPatch, key: str, ts_ms: int, rank: int) -> None:
    """A linepulse bug: the engine raises after applying machine ``key``'s event of ``rank`` at
    ``ts_ms``, leaving its state half-changed (the processing error the replay must undo)."""
    original = MachineEngine._record

    def broken(engine: MachineEngine, state: Any, spec: Any, at_ms: int, event_rank: int, *args: Any) -> Any:
        result = original(engine, state, spec, at_ms, event_rank, *args)
        if (spec.key, at_ms, event_rank) == (key, ts_ms, rank):
            raise ZeroDivisionError("a bug")
        return result

    monkeypatch.setattr(MachineEngine, "_record", broken)


class Worker:
    """A worker's batch applier on ``table``; a restart is a new one on the same (written) table."""

    def __init__(self, table: Any, config: PlantConfig | None = None) -> None:
        self.table = table
        self.processor = TelemetryProcessor(
            config or plant(), max_payload_bytes=1 << 20, max_future_ms=300_000
        )
        self.published: list[Applied] = []
        self.restart()

    def restart(self) -> None:
        self.states = StateTable(self.table)
        self.applier = BatchApplier(self.processor, self.states, "telemetry")

    def apply(self, lines: list[bytes], first_offset: int) -> None:
        outcomes = self.applier.in_order(self.applier.apply(messages(lines, first_offset)))
        self.published += [outcome for outcome in outcomes if isinstance(outcome, Applied)]
        write_acknowledged(self.states)

    def records(self) -> tuple[list[bytes], list[bytes], dict[str, Any]]:
        final = [decode_state(self.table[raw]) for raw in self.table]
        kpis = [record_bytes(kpi) for outcome in self.published for kpi in outcome.kpis]
        kpis += [record_bytes(kpi) for state in final for kpi in self.processor.open_window_records(state)]
        alerts = [record_bytes(alert) for outcome in self.published for alert in outcome.alerts]
        totals = {state.key: state.totals.to_dict() for state in final}
        return sorted(kpis), sorted(alerts), totals


def assert_restart_changes_nothing(
    tables: tuple[Any, Any], lines: list[bytes], cut: int, ticked: str, config: PlantConfig | None = None
) -> None:
    """A worker restarted before ``lines[cut]`` gives the records and totals of one that was not;
    ``ticked`` must have been ticked past its events, so the comparison can see a tick go wrong."""
    uninterrupted, restarted = Worker(tables[0], config), Worker(tables[1], config)
    for worker in (uninterrupted, restarted):
        worker.apply(lines[:cut], 0)
    restarted.restart()
    for worker in (uninterrupted, restarted):
        worker.apply(lines[cut:], cut)
    kpis, alerts, totals = uninterrupted.records()
    assert totals[ticked]["late_events"] > 0
    assert restarted.records() == (kpis, alerts, totals)


@pytest.fixture
def tables(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    with (
        memory_table(tmp_path / "a", "restart-a", partitions=1) as first,
        memory_table(tmp_path / "b", "restart-b", partitions=1) as second,
    ):
        yield first, second


@pytest.mark.parametrize("after", [1, 2, 3], ids=lambda n: f"after-{n}-of-M2s-messages")
def test_a_restart_ticks_a_machine_that_joined_mid_minute_as_the_uninterrupted_worker(
    tables: tuple[Any, Any], after: int
) -> None:
    """The restarted worker's first message checks the minute M2 joined in: the first run had
    checked it before M2 joined, so M2 waited for the next minute there, and must here too."""
    lines = late_joiner()
    first_m2 = next(i for i, line in enumerate(lines) if b'"M2"' in line)
    cut = first_m2 + 2 * after - 1  # just after M2's ``after``-th message
    assert_restart_changes_nothing(tables, lines, cut, "a/M2")  # M2 is ticked past its buffer


def test_a_restart_whose_first_message_is_a_lagging_gateways_resumes_the_clock_where_it_was(
    tables: tuple[Any, Any],
) -> None:
    """The restarted worker's first message is M2's, 20 minutes behind the live M1: stream time
    (not stored) must resume where the machines' states say the first run had it, else M3, joining
    right after, is judged on a clock 20 minutes behind and ticked a minute early (review)."""
    three = PlantConfig.model_validate(
        {
            "timezone": "UTC",
            "machines": [
                {"tenant": "a", "site": "s", "line": "L", "id": machine, "ideal_cycle_s": 10.0}
                for machine in ("M1", "M2", "M3")
            ],
        }
    )
    lines, cut = [event("M1", 0, kind="state", state="running")], 0
    for step in range(1, 360):
        at = step * 10 * SEC
        lines.append(event("M1", at, kind="count", good=1))
        if at == 25 * MIN:
            lines.append(event("M2", at - LAG, kind="state", state="running"))
        elif at > 25 * MIN:
            lines.append(event("M2", at - LAG, kind="count", good=1))
        if at == 40 * MIN + 20 * SEC:
            cut = len(lines) - 1  # M2's message: the first the restarted worker reads
            lines.append(event("M3", at - LAG, kind="state", state="running"))
        elif at > 40 * MIN + 20 * SEC:
            lines.append(event("M3", at - LAG, kind="count", good=1))
    assert_restart_changes_nothing(tables, lines, cut, "a/M3", three)  # M3 is ticked past its buffer


def test_a_state_written_before_silence_intervals_were_kept_loads() -> None:
    """Such a machine is ticked at the restarted worker's first check, as before."""
    processor = TelemetryProcessor(plant(), max_payload_bytes=1 << 20, max_future_ms=300_000)
    first = late_joiner()[0]
    outcome = processor.process(None, first, timestamp_ms=None, load_state=lambda _: None, require_key=False)
    assert isinstance(outcome, Applied)
    outcome.state.silence_interval = 7
    stored = outcome.state.to_dict()
    assert decode_state(orjson.dumps(stored)).silence_interval == 7
    del stored["silence_interval"]
    assert decode_state(orjson.dumps(stored)).silence_interval is None


@pytest.mark.parametrize("batch", [120, 1000])
def test_a_processing_error_rebuilds_its_machine_with_the_ticks_the_batch_gave_it(
    tables: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    """A bug strikes M2 at its count of 20:10, after ticks earlier in the batch: the machine is
    rebuilt from the batch's messages with those ticks in between, as the worker had it, so the
    records are those of one message a batch (where the table's state holds the ticks)."""
    lines = late_joiner()
    break_record(monkeypatch, "a/M2", T0 + 20 * MIN + 10 * SEC, RANK_COUNT)
    one_a_batch, batched = Worker(tables[0]), Worker(tables[1])
    for start in range(len(lines)):
        one_a_batch.apply(lines[start : start + 1], start)
    for start in range(0, len(lines), batch):
        batched.apply(lines[start : start + batch], start)
    kpis, alerts, totals = one_a_batch.records()
    assert totals["a/M2"]["late_events"] > 0
    assert batched.records() == (kpis, alerts, totals)
    assert {raw: decode_state(tables[1][raw]).to_dict() for raw in tables[1]} == {
        raw: decode_state(tables[0][raw]).to_dict() for raw in tables[0]
    }


def test_a_processing_error_rebuilds_its_machine_with_the_stop_judged_earlier_in_the_batch(
    tables: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """M1 breaks down at 1:00 and its stop becomes an alert on stream time at 6:00 (M2's count);
    a bug strikes M1's count at 7:00: the rebuilt M1 has the alert open, as one message a batch has
    it, rather than raising it again at the next message."""
    lines = [event(machine, 0, kind="state", state="running") for machine in ("M1", "M2")]
    lines.append(event("M1", 1 * MIN, kind="state", state="down"))
    for step in range(1, 60):
        lines.append(event("M2", step * 10 * SEC, kind="count", good=1))
        if step == 42:
            lines.append(event("M1", step * 10 * SEC, kind="count", good=0, scrap=1))
    break_record(monkeypatch, "a/M1", T0 + 7 * MIN, RANK_COUNT)
    one_a_batch, batched = Worker(tables[0]), Worker(tables[1])
    for start in range(len(lines)):
        one_a_batch.apply(lines[start : start + 1], start)
    batched.apply(lines, 0)
    kpis, alerts, totals = one_a_batch.records()
    assert [orjson.loads(alert)["kind"] for alert in alerts] == ["machine_stopped"]
    assert batched.records() == (kpis, alerts, totals)


def test_a_message_whose_processing_fails_moves_stream_time_in_analyze_as_in_the_worker(
    tmp_path: Path, tables: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """M1 breaks down at 1:00; M2's cycle at 6:10 is the first message past the stop's deadline and
    fails (a bug, dead-lettered): its valid event time still judges M1's stop (stopped_s 310, not
    330 at M2's next count), in ``analyze`` as in the worker. M1's records are those of a run
    without the bug."""
    lines = [event(machine, 0, kind="state", state="running") for machine in ("M1", "M2")]
    lines.append(event("M1", 1 * MIN, kind="state", state="down"))
    for step in range(1, 21):  # a count every 30 s, but none at 6:00
        if step == 12:
            lines.append(event("M2", 6 * MIN + 10 * SEC, kind="cycle", seconds=12.0))
        else:
            lines.append(event("M2", step * 30 * SEC, kind="count", good=1))
    healthy = analyze(tmp_path, "healthy", lines)
    break_record(monkeypatch, "a/M2", T0 + 6 * MIN + 10 * SEC, RANK_CYCLE)
    worker = Worker(tables[0])
    for start in range(0, len(lines), 7):
        worker.apply(lines[start : start + 7], start)
    kpis, alerts, _ = worker.records()
    in_file = analyze(tmp_path, "broken", lines)

    def of_m1(records: list[bytes]) -> list[bytes]:
        return sorted(record for record in records if b'"machine":"M1"' in record)

    assert [orjson.loads(alert)["evidence"]["stopped_s"] for alert in of_m1(alerts)] == [310.0]
    for records in (healthy, in_file):
        assert (of_m1(records[0]), of_m1(records[1])) == (of_m1(kpis), of_m1(alerts))


def test_analyze_judges_no_stop_of_a_machine_dropped_after_a_processing_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """M1's stop is scheduled for 6:00 when a bug strikes its count at 2:00: ``analyze`` starts M1
    afresh, so stream time reaching 6:00 judges no state (it raised KeyError)."""
    lines = [event(machine, 0, kind="state", state="running") for machine in ("M1", "M2")]
    lines.append(event("M1", 1 * MIN, kind="state", state="down"))
    lines.append(event("M1", 2 * MIN, kind="count", good=0, scrap=1))
    lines += [event("M2", step * 30 * SEC, kind="count", good=1) for step in range(1, 21)]
    break_record(monkeypatch, "a/M1", T0 + 2 * MIN, RANK_COUNT)
    kpis, alerts = analyze(tmp_path, "dropped", lines)
    assert alerts == []
    assert any(b'"machine":"M2"' in kpi for kpi in kpis)
