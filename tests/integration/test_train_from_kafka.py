"""``linepulse train`` from a time range of a Kafka topic.

Apache Kafka only: Tansu has known faults with offsets-by-timestamp.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from kafka import KafkaProducer

from service.brokers import KafkaCluster
from service.cli import main
from service.plant_file import load_plant
from service.simulator.engine import PlantSimulator
from tests.integration.conftest import TopicFactory

START_MS = 1_767_564_000_000
HOUR_MS = 3_600_000


def test_train_reads_only_the_time_range(
    apache_kafka: KafkaCluster, fresh_topic: TopicFactory, tmp_path: Path
) -> None:
    bootstrap = apache_kafka.bootstrap_servers
    topic = fresh_topic(bootstrap, partitions=2)
    simulator = PlantSimulator(load_plant(None), seed=8, start_ms=START_MS)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    for record in simulator.events(START_MS + 3 * HOUR_MS):
        ts = int(record["ts"])  # type: ignore[call-overload]
        key = f"{record['tenant']}/{record['machine']}".encode()
        # Broker timestamps = event times, as a producer stamping at the edge would set them.
        producer.send(topic, key=key, value=orjson.dumps(record), timestamp_ms=ts)
    producer.flush()
    producer.close()
    start, end = START_MS + HOUR_MS, START_MS + 2 * HOUR_MS
    registry = tmp_path / "registry"
    args = ["train", "--bootstrap-servers", bootstrap, "--topic", topic, "--registry", str(registry)]
    args += ["--machine", "M01", "--start", str(start), "--end", str(end)]
    assert main(args) == 0
    manifest = json.loads((registry / "demo.M01" / "manifest.json").read_text())
    training = manifest["versions"][0]["metadata"]["training"]
    assert training["source"] == f"kafka:{topic}"
    assert start <= training["start_ms"] < start + 60_000
    assert end - 60_000 < training["end_ms"] < end
    assert 3000 < training["rows"] <= 3600
