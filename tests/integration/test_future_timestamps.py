"""An event time too far in the future is judged against its message's Kafka timestamp, on Apache Kafka.

Like the broker's ``message.timestamp.after.max.ms``: the limit is measured from the timestamp the
message carries (here the producer's CreateTime), never from the worker's clock, so a message gets the
same verdict whenever a worker applies it (after a restart, in a replay a year later).
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
from kafka import KafkaProducer

from service.brokers import KafkaCluster
from tests.integration.harness import WorkerProcess, consume_all, wait_for
from tests.integration.streams_fixtures import create_topics, simulated_messages, unique_topics

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS


def _record(machine: str, ts_ms: int, state: str) -> tuple[bytes, bytes]:
    record = {"v": 1, "tenant": "demo", "site": "p1", "line": "L1", "machine": machine, "ts": ts_ms}
    return f"demo/{machine}".encode(), orjson.dumps({**record, "kind": "state", "state": state})


def test_future_is_measured_from_the_kafka_timestamp_not_the_worker_clock(
    apache_kafka: KafkaCluster, tmp_path: Path
) -> None:
    bootstrap = apache_kafka.bootstrap_servers
    topics = unique_topics()
    create_topics(bootstrap, topics)
    clock_ms = int(time.time() * 1000)
    valid = simulated_messages(200)
    # A source whose clock is 30 min ahead, and its producer's too: 1 min apart, within the limit
    # (the broker's default after.max.ms, one hour, lets the CreateTime in).
    ahead = _record("M03", clock_ms + 30 * MINUTE_MS, "running")
    ahead_created = clock_ms + 29 * MINUTE_MS
    # Produced a day ago by a gateway whose clock ran an hour fast: long past now, but an hour
    # ahead of the moment it was sent.
    fast = _record("M04", clock_ms - 23 * HOUR_MS, "idle")
    fast_created = clock_ms - 24 * HOUR_MS
    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all")
    try:
        for key, value in valid:
            producer.send(topics["telemetry"], key=key, value=value)
        producer.send(topics["telemetry"], key=ahead[0], value=ahead[1], timestamp_ms=ahead_created)
        producer.send(topics["telemetry"], key=fast[0], value=fast[1], timestamp_ms=fast_created)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=30)

    with WorkerProcess(bootstrap, topics, tmp_path) as worker:
        wait_for(lambda: worker.applied_events() >= len(valid) + 1, 120, "the valid events applied")
        dead: list[object] = []

        def dead_letter_arrived() -> bool:
            dead[:] = consume_all(bootstrap, topics["dead_letters"], idle_s=2)
            return len(dead) >= 1

        wait_for(dead_letter_arrived, 60, "the dead letter")
        time.sleep(2)  # nothing else is dead-lettered
        assert worker.applied_events() == len(valid) + 1
    [letter] = consume_all(bootstrap, topics["dead_letters"], idle_s=2)
    assert letter.value == fast[1]
    headers = dict(letter.headers)
    assert headers["linepulse.error.code"] == b"future_timestamp"
    assert headers["linepulse.error.reason"].startswith(b"3600 s ahead of the message's Kafka timestamp")
