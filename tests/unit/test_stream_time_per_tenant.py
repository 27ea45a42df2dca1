"""Stream time per partition *and tenant*, and silence ticks that do not depend on batching.

Two tenants with the same machine ids share a partition. One tenant's traffic must not change the
other's records (a gateway outage, a backfill next to a live tenant), and the worker's records must
be ``analyze``'s whatever the batches (README: a replay gives exactly the stream's records).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from faust.types import Message

from models.plant import PlantConfig
from service.analyze import analyze_file
from service.settings import Settings
from streams.batch import BatchApplier
from streams.processing import Applied, TelemetryProcessor, decode_state
from streams.records import record_bytes
from streams.state_table import StateTable
from tests.unit.faust_tables import memory_table, write_acknowledged

T0 = 1_795_600_800_000  # a whole UTC hour
MIN = 60_000
HELD = (60, 100)  # minutes whose telemetry a gateway holds back and sends at the second


def plant() -> PlantConfig:
    machines = [
        {"tenant": tenant, "site": "s", "line": "L", "id": machine, "ideal_cycle_s": 10.0}
        for tenant in ("a", "b")
        for machine in ("M1", "M2")
    ]
    return PlantConfig.model_validate({"timezone": "UTC", "machines": machines})


def day(tenant: str) -> list[tuple[int, bytes]]:
    """Three hours of one tenant's two machines, in event-time order: a count a minute, M2 idle for
    67 s at 50 min (too short for an alert) and down for 10 min at 120 min."""
    out: list[tuple[int, bytes]] = []

    def add(machine: str, at_ms: int, **fields: Any) -> None:
        base = {"v": 1, "tenant": tenant, "site": "s", "line": "L", "machine": machine, "ts": T0 + at_ms}
        out.append((at_ms, orjson.dumps({**base, **fields})))

    for minute in range(180):
        for machine in ("M1", "M2"):
            if minute == 0:
                add(machine, 0, kind="state", state="running")
            if machine == "M2" and minute in (50, 120):
                add(machine, minute * MIN, kind="state", state="idle" if minute == 50 else "down")
            if machine == "M2" and 120 <= minute < 130:
                continue
            add(machine, minute * MIN + 1000, kind="count", good=5)
            if machine == "M2" and minute == 50:
                add(machine, minute * MIN + 67_000, kind="state", state="running")
            if machine == "M2" and minute == 130:
                add(machine, minute * MIN + 2000, kind="state", state="running")
    return sorted(out, key=lambda item: item[0])


def live(*tenants: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    return sorted((item for tenant in tenants for item in tenant), key=lambda item: item[0])


def held_back(events: list[tuple[int, bytes]], held: Any) -> list[bytes]:
    """``events`` as sent when those ``held`` (a predicate on (minute, line)) are sent only at
    ``HELD[1]`` minutes, after that minute's live events."""
    now: list[bytes] = []
    later: list[bytes] = []
    for at_ms, line in events:
        if held(at_ms // MIN, line):
            later.append(line)
            continue
        if later and at_ms >= HELD[1] * MIN:
            now += later
            later = []
        now.append(line)
    return now + later


def of_tenant(lines: list[bytes], tenant: str) -> list[bytes]:
    return sorted(line for line in lines if orjson.loads(line)["tenant"] == tenant)


def analyze(tmp_path: Path, name: str, lines: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """``analyze --partitions 1``: every machine on one partition. Its KPI and alert lines."""
    source = tmp_path / f"{name}.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / name
    analyze_file(source, plant(), out, Settings(partitions=1))
    return (out / "kpis.jsonl").read_bytes().splitlines(), (out / "alerts.jsonl").read_bytes().splitlines()


def test_a_tenants_records_do_not_depend_on_another_tenants_traffic(tmp_path: Path) -> None:
    """Tenant a's gateway holds 40 minutes back (more than close_silent_after_s) while b is live,
    then a is backfilled after all of b's day: a's records are those of a alone."""
    a, b = day("a"), day("b")
    alone = analyze(tmp_path, "alone", [line for _, line in a])
    outage = held_back(live(a, b), lambda minute, line: HELD[0] <= minute < HELD[1] and b'"a"' in line)
    backfill = [line for _, line in b] + [line for _, line in a]
    for name, lines in (("outage", outage), ("backfill", backfill)):
        kpis, alerts = analyze(tmp_path, name, lines)
        assert of_tenant(kpis, "a") == sorted(alone[0]), name
        assert of_tenant(alerts, "a") == sorted(alone[1]), name
    assert [orjson.loads(line)["kind"] for line in alone[1]] == ["machine_stopped", "machine_stopped"]


def messages(lines: list[bytes], first_offset: int, partition: int = 0) -> list[Message]:
    return [
        Message(
            topic="telemetry",
            partition=partition,
            offset=first_offset + i,
            timestamp=time.time(),
            timestamp_type=0,
            headers=[],
            key="{tenant}/{machine}".format(**orjson.loads(line)).encode(),
            value=line,
            checksum=None,
        )
        for i, line in enumerate(lines)
    ]


@pytest.fixture
def table(tmp_path: Path) -> Iterator[Any]:
    with memory_table(tmp_path, "tenant-clock-test", partitions=1) as table:
        yield table


@pytest.mark.parametrize("batch", [1, 3, 40, 1000])
def test_the_worker_gives_analyzes_records_whatever_the_batches(
    tmp_path: Path, table: Any, batch: int
) -> None:
    """Tenant a's M2 gateway holds 40 minutes back while a's M1 and tenant b are live: M2's held
    events are late on a's clock, and exactly as late in any batches as in ``analyze``."""
    lines = held_back(
        live(day("a"), day("b")),
        lambda minute, line: HELD[0] <= minute < HELD[1] and b'"a"' in line and b'"M2"' in line,
    )
    kpis, alerts = analyze(tmp_path, "analyze", lines)
    assert any(orjson.loads(line)["late_events"] for line in kpis)  # the held events were late
    processor = TelemetryProcessor(plant(), max_payload_bytes=1 << 20, max_future_ms=300_000)
    states = StateTable(table)
    applier = BatchApplier(processor, states, "telemetry")
    published: list[Applied] = []
    for start in range(0, len(lines), batch):
        outcomes = applier.in_order(applier.apply(messages(lines[start : start + batch], start)))
        published += [outcome for outcome in outcomes if isinstance(outcome, Applied)]
        write_acknowledged(states)
    final = [decode_state(table[raw]) for raw in table]
    worker_kpis = [record_bytes(kpi) for outcome in published for kpi in outcome.kpis]
    worker_kpis += [record_bytes(kpi) for state in final for kpi in processor.open_window_records(state)]
    assert sorted(worker_kpis) == sorted(kpis)
    assert sorted(record_bytes(alert) for outcome in published for alert in outcome.alerts) == sorted(alerts)
