"""A machine that goes silent still gets its hour records on the ``kpis`` topic, by its partition's
stream time, on a real broker; a silent machine on a partition whose time stands still does not."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from service.plant_file import load_plant
from streams.partitioning import key_partition
from tests.integration.conftest import BrokerEndpoint
from tests.integration.harness import WorkerProcess, consume_all, produce, records, wait_for
from tests.integration.streams_fixtures import analyze_lines, create_topics, unique_topics

PARTITIONS = 3
HOUR_MS = 3_600_000
PLANT_YAML = """
timezone: Asia/Seoul
machines:
  - {tenant: acme, site: p1, line: L1, id: M01, ideal_cycle_s: 6.0}
  - {tenant: acme, site: p1, line: L1, id: M03, ideal_cycle_s: 6.0}
  - {tenant: acme, site: p1, line: L1, id: M04, ideal_cycle_s: 6.0}
state_timeout_s: 900
close_silent_after_s: 900
alerts: {oee_below: null}
"""


def partition_of(machine: str) -> int:
    return key_partition(f"acme/{machine}", PARTITIONS)


def telemetry(start: int) -> list[tuple[bytes, bytes]]:
    def event(machine: str, offset_ms: int, **fields: Any) -> tuple[bytes, bytes]:
        base = {"v": 1, "tenant": "acme", "site": "p1", "line": "L1", "machine": machine}
        return f"acme/{machine}".encode(), orjson.dumps({**base, "ts": start + offset_ms, **fields})

    values = []
    for silent in ("M01", "M04"):  # ten minutes of running, then nothing
        values += [
            event(silent, 0, kind="state", state="running"),
            event(silent, 600_000, kind="count", good=90),
        ]
    # M03 shares M01's partition and reports every minute for three hours: that partition's time moves.
    values += [event("M03", minute * 60_000, kind="count", good=1) for minute in range(181)]
    return values


def test_a_silent_machine_is_closed_by_its_partitions_stream_time(
    broker: BrokerEndpoint, tmp_path: Path
) -> None:
    assert partition_of("M01") == partition_of("M03") != partition_of("M04")
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(PLANT_YAML)
    start = (int(time.time() * 1000) // HOUR_MS - 6) * HOUR_MS  # a whole hour, in Seoul too
    values = telemetry(start)
    topics = unique_topics()
    create_topics(broker.bootstrap_servers, topics, PARTITIONS)
    produce(broker.bootstrap_servers, topics["telemetry"], values)

    hours: dict[str, list[dict[str, Any]]] = {}
    with WorkerProcess(broker.bootstrap_servers, topics, tmp_path, config=plant_file) as worker:
        wait_for(lambda: worker.applied_events() >= len(values), 120, "all events applied")

        def silent_hours_closed() -> bool:
            found = records(consume_all(broker.bootstrap_servers, topics["kpis"], idle_s=2))
            hours.clear()
            for record in found:
                if record["window"] == "hour":
                    hours.setdefault(record["machine"], []).append(record)
            return len(hours.get("M01", [])) >= 2

        wait_for(silent_hours_closed, 60, "M01's hours closed by its partition's stream time")
        worker.assert_alive()

    first, second = sorted(hours["M01"], key=lambda record: record["start_ms"])
    # Running is believed for state_timeout_s after its last event (10 min): 25 min, then unknown.
    assert (first["start_ms"], first["run_s"], first["unknown_s"]) == (start, 1500, 2100)
    assert (second["start_ms"], second["run_s"], second["unknown_s"]) == (start + HOUR_MS, 0, 3600)
    assert second["coverage"] == 0 and second["oee"] is None
    # M04's partition saw nothing after its own last event: its clock stands still, nothing closes.
    assert "M04" not in hours
    # analyze keeps stream time per partition of a topic of as many partitions (each line on its
    # key's), so it closes the same hours: M01's, and none of M04's.
    offline = analyze_lines([value for _, value in values], tmp_path, load_plant(plant_file), PARTITIONS)
    expected = sorted(
        (r for r in offline["kpis"] if r["machine"] == "M01" and r["window"] == "hour" and r["complete"]),
        key=lambda record: record["start_ms"],
    )
    assert [first, second] == expected[:2]
    assert not any(r["machine"] == "M04" and r["window"] == "hour" and r["complete"] for r in offline["kpis"])
    # Read as one partition, M01's partition's time closes M04's hours too: not what the stream did.
    merged = analyze_lines([value for _, value in values], tmp_path, load_plant(plant_file), 1)
    assert any(r["machine"] == "M04" and r["window"] == "hour" and r["complete"] for r in merged["kpis"])
