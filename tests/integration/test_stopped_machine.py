"""A machine that reports only state changes gets its ``machine_stopped`` alert while it is still
down, judged on its partition's stream time, on a real broker; the records equal ``analyze``'s."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from service.analyze import analyze_file
from service.plant_file import load_plant
from service.settings import load_settings
from streams.partitioning import key_partition
from tests.integration.conftest import BrokerEndpoint
from tests.integration.harness import WorkerProcess, consume_all, produce, records, wait_for
from tests.integration.streams_fixtures import create_topics, unique_topics

PARTITIONS = 3
PLANT_YAML = """
timezone: Asia/Seoul
machines:
  - {tenant: acme, site: p1, line: L1, id: M01, ideal_cycle_s: 6.0}
  - {tenant: acme, site: p1, line: L1, id: M03, ideal_cycle_s: 6.0}
  - {tenant: acme, site: p1, line: L1, id: M04, ideal_cycle_s: 6.0}
alerts: {oee_below: null}
close_silent_after_s: null
"""
DOWN_MS = 308_000  # the reviewer's live case: down 308 s, the neighbour reporting every 10 s


def partition_of(machine: str) -> int:
    return key_partition(f"acme/{machine}", PARTITIONS)


def event(machine: str, at_ms: int, **fields: Any) -> tuple[bytes, bytes]:
    base = {"v": 1, "tenant": "acme", "site": "p1", "line": "L1", "machine": machine, "ts": at_ms}
    return f"acme/{machine}".encode(), orjson.dumps({**base, **fields})


def stopped_alerts(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [r for r in records(consume_all(bootstrap, topic, idle_s=2)) if r["kind"] == "machine_stopped"]


def test_a_machine_down_while_its_neighbour_reports_is_alerted_before_it_runs_again(
    broker: BrokerEndpoint, tmp_path: Path
) -> None:
    assert partition_of("M01") == partition_of("M03")  # one partition, one stream time
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(PLANT_YAML)
    down = int(time.time() * 1000) - 3_600_000
    up = down + DOWN_MS
    while_down = [event("M01", down - 60_000, kind="state", state="running")]
    while_down.append(event("M01", down, kind="state", state="down", reason="breakdown"))
    while_down += [event("M03", at, kind="sensor", signal="v", value=1.0) for at in range(down, up, 10_000)]
    after = [event("M01", up, kind="state", state="running")]
    after += [event("M03", at, kind="sensor", signal="v", value=1.0) for at in range(up, up + 60_000, 10_000)]
    topics = unique_topics()
    create_topics(broker.bootstrap_servers, topics, PARTITIONS)
    bootstrap = broker.bootstrap_servers

    with WorkerProcess(bootstrap, topics, tmp_path, config=plant_file) as worker:
        produce(bootstrap, topics["telemetry"], while_down)
        wait_for(lambda: worker.applied_events() >= len(while_down), 120, "the stop applied")
        found: list[dict[str, Any]] = []

        def opened() -> bool:
            found[:] = stopped_alerts(bootstrap, topics["alerts"])
            return bool(found)

        wait_for(opened, 60, "machine_stopped opened while M01 is still down")
        # Nothing from M01 since its stop: the alert came from M03's readings (stream time).
        [alert] = found
        assert (alert["machine"], alert["status"], alert["severity"]) == ("M01", "open", "critical")
        assert alert["evidence"]["measured_on"] == "stream_time"
        assert alert["evidence"]["stopped_s"] == 300.0  # M03's reading 5 min into the stop

        produce(bootstrap, topics["telemetry"], after)
        wait_for(lambda: len(stopped_alerts(bootstrap, topics["alerts"])) >= 2, 60, "resolved")
        worker.assert_alive()
    stream = stopped_alerts(bootstrap, topics["alerts"])
    assert [r["status"] for r in stream] == ["open", "resolved"]

    source = tmp_path / "telemetry.jsonl"
    source.write_bytes(b"".join(value + b"\n" for _, value in [*while_down, *after]))
    analyze_file(source, load_plant(plant_file), tmp_path / "analyze", load_settings())
    offline = [
        orjson.loads(line) for line in (tmp_path / "analyze" / "alerts.jsonl").read_bytes().splitlines()
    ]
    assert stream == offline


def test_analyze_of_a_topic_dumped_partition_after_partition_gives_the_streams_alerts(
    broker: BrokerEndpoint, tmp_path: Path
) -> None:
    """A dump of a topic holds its partitions one after another (or interleaved any way), never in
    event time across them. analyze read the file as one partition: M04's readings on another
    partition moved "stream time" past M01's stop, inventing a stop alert judged on stream time
    that the stream, where M01's partition saw only M03's first 3 minutes, never raised."""
    assert partition_of("M01") == partition_of("M03") != partition_of("M04")
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(PLANT_YAML)
    down = int(time.time() * 1000) - 3_600_000
    values = [event("M01", down - 60_000, kind="state", state="running")]
    values.append(event("M01", down, kind="state", state="down", reason="breakdown"))
    values += [
        event("M03", at, kind="sensor", signal="v", value=1.0) for at in range(down, down + 180_000, 10_000)
    ]
    values += [
        event("M04", at, kind="sensor", signal="v", value=1.0) for at in range(down, down + 1_200_000, 10_000)
    ]
    values.append(event("M01", down + 1_800_000, kind="state", state="running"))
    topics = unique_topics()
    create_topics(broker.bootstrap_servers, topics, PARTITIONS)
    bootstrap = broker.bootstrap_servers
    with WorkerProcess(bootstrap, topics, tmp_path, config=plant_file) as worker:
        produce(bootstrap, topics["telemetry"], values)
        wait_for(lambda: worker.applied_events() >= len(values), 120, "all applied")
        wait_for(lambda: len(stopped_alerts(bootstrap, topics["alerts"])) >= 2, 60, "the stop's alerts")
        worker.assert_alive()
    stream = stopped_alerts(bootstrap, topics["alerts"])
    # The stop ended before its partition's stream time reached down_after_s: judged at its end.
    assert [(r["status"], r["evidence"]["measured_on"]) for r in stream] == [
        ("open", "machine_time"),
        ("resolved", "machine_time"),
    ]

    dump = sorted(consume_all(bootstrap, topics["telemetry"]), key=lambda m: (-m.partition, m.offset))
    source = tmp_path / "dump.jsonl"
    source.write_bytes(b"".join(message.value + b"\n" for message in dump))
    analyze_file(source, load_plant(plant_file), tmp_path / "analyze", load_settings(partitions=PARTITIONS))
    offline = [
        orjson.loads(line) for line in (tmp_path / "analyze" / "alerts.jsonl").read_bytes().splitlines()
    ]
    assert offline == stream
