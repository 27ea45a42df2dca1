"""An event time too far in the future is judged against its message's Kafka timestamp, on Apache Kafka.

Like the broker's ``message.timestamp.after.max.ms``: the limit is measured from the timestamp the
message carries, never from the worker's clock, so a message gets the same verdict whenever a worker
applies it (after a restart, in a replay a year later). linepulse creates the telemetry topic with
``message.timestamp.type=LogAppendTime``, so that timestamp is the broker's clock: a producer whose
clock runs ahead cannot vouch for its own far-future event times. A topic someone else created with
CreateTime carries the producers' timestamps, and the worker judges against those (and warns).
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
from kafka import KafkaProducer

from service.brokers import KafkaCluster
from streams.topics import TIMESTAMP_TYPE
from tests.integration.conftest import TopicFactory
from tests.integration.harness import WorkerProcess, consume_all, wait_for
from tests.integration.streams_fixtures import create_topics, simulated_messages, unique_topics

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS


def _record(machine: str, ts_ms: int, state: str) -> tuple[bytes, bytes]:
    record = {"v": 1, "tenant": "demo", "site": "p1", "line": "L1", "machine": machine, "ts": ts_ms}
    return f"demo/{machine}".encode(), orjson.dumps({**record, "kind": "state", "state": state})


def _wait_for_one_dead_letter(worker: WorkerProcess, bootstrap: str, topic: str, applied: int) -> None:
    """``applied`` events applied and a dead letter written, then two more seconds of nothing else."""
    wait_for(lambda: worker.applied_events() >= applied, 120, "the valid events applied")
    wait_for(lambda: len(consume_all(bootstrap, topic, idle_s=2)) >= 1, 60, "the dead letter")
    time.sleep(2)  # nothing else is dead-lettered
    assert worker.applied_events() == applied


def test_future_is_measured_from_the_kafka_timestamp_not_the_worker_clock(
    apache_kafka: KafkaCluster, fresh_topic: TopicFactory, tmp_path: Path
) -> None:
    bootstrap = apache_kafka.bootstrap_servers
    topics = unique_topics()
    # A telemetry topic created by someone else with CreateTime: the producers' timestamps stand
    # for the time each message was sent, which this test sets (linepulse's own is LogAppendTime).
    topics["telemetry"] = fresh_topic(
        bootstrap, partitions=3, config={TIMESTAMP_TYPE: "CreateTime"}, prefix="telemetry-createtime"
    )
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
        _wait_for_one_dead_letter(worker, bootstrap, topics["dead_letters"], len(valid) + 1)
    # The start said that this topic's timestamps are the producers' (and how to change that).
    assert f"topic {topics['telemetry']!r} has {TIMESTAMP_TYPE}=CreateTime" in worker.log_path.read_text()
    [letter] = consume_all(bootstrap, topics["dead_letters"], idle_s=2)
    assert letter.value == fast[1]
    headers = dict(letter.headers)
    assert headers["linepulse.error.code"] == b"future_timestamp"
    assert headers["linepulse.error.reason"].startswith(b"3600 s ahead of the message's Kafka timestamp")


def test_a_producer_clock_ahead_cannot_vouch_for_its_future_event_times(
    apache_kafka: KafkaCluster, tmp_path: Path
) -> None:
    """A gateway whose clock runs 50 minutes ahead stamps its events and its CreateTime alike (within
    the broker's default ``message.timestamp.after.max.ms``, one hour, so the broker takes it). On
    the telemetry topic linepulse creates, the broker stamps each message with its own clock, so the
    event is 50 minutes ahead of its Kafka timestamp: dead-lettered, and the partition's stream time
    does not move (a valid event after it is applied, not late)."""
    bootstrap = apache_kafka.bootstrap_servers
    topics = unique_topics()
    create_topics(bootstrap, topics)
    clock_ms = int(time.time() * 1000)
    ahead = _record("M03", clock_ms + 50 * MINUTE_MS, "running")
    valid = simulated_messages(200, start_ms=clock_ms - 2 * HOUR_MS)
    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all")
    try:
        for key, value in valid[:100]:
            producer.send(topics["telemetry"], key=key, value=value)
        sent = producer.send(
            topics["telemetry"], key=ahead[0], value=ahead[1], timestamp_ms=clock_ms + 50 * MINUTE_MS
        ).get(timeout=60)
        for key, value in valid[100:]:
            producer.send(topics["telemetry"], key=key, value=value)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=30)

    with WorkerProcess(bootstrap, topics, tmp_path) as worker:
        _wait_for_one_dead_letter(worker, bootstrap, topics["dead_letters"], len(valid))
        # ... and no valid event was late (stream time did not move ahead)
        assert worker.metric('linepulse_messages_total{result="too_late"}') == 0.0
    assert f"{TIMESTAMP_TYPE}=CreateTime" not in worker.log_path.read_text()
    [letter] = consume_all(bootstrap, topics["dead_letters"], idle_s=2)
    assert letter.value == ahead[1]
    headers = dict(letter.headers)
    assert headers["linepulse.error.code"] == b"future_timestamp"
    # The broker's append time, not the producer's: the message's own timestamp is now.
    assert abs(sent.timestamp - clock_ms) < 5 * MINUTE_MS, sent
    # Judged against that append time, to the millisecond (50 min less the time until the append).
    reason = headers["linepulse.error.reason"].decode()
    ahead_s, _, rest = reason.partition(" s ahead of the message's Kafka timestamp")
    assert rest == " (limit 300 s)", reason
    assert float(ahead_s) == (clock_ms + 50 * MINUTE_MS - sent.timestamp) / 1000, reason


def test_a_device_clock_reset_to_2000_is_dead_lettered_on_the_broker_clock(
    apache_kafka: KafkaCluster, tmp_path: Path
) -> None:
    """A device whose clock fell back to 2000 (a dead battery) stamps a machine's first event 26
    years before the broker's append time: dead-lettered (original bytes kept), so the machine's
    history does not start in 2000 with every window since built and sent."""
    bootstrap = apache_kafka.bootstrap_servers
    topics = unique_topics()
    create_topics(bootstrap, topics)
    clock_ms = int(time.time() * 1000)
    reset = _record("M03", 946_684_805_000, "running")  # 2000-01-01T00:00:05Z
    valid = simulated_messages(200, start_ms=clock_ms - 2 * HOUR_MS)
    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all")
    try:
        producer.send(topics["telemetry"], key=reset[0], value=reset[1]).get(timeout=60)
        for key, value in valid:
            producer.send(topics["telemetry"], key=key, value=value)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=30)

    with WorkerProcess(bootstrap, topics, tmp_path) as worker:
        _wait_for_one_dead_letter(worker, bootstrap, topics["dead_letters"], len(valid))
    [letter] = consume_all(bootstrap, topics["dead_letters"], idle_s=2)
    assert letter.value == reset[1]
    headers = dict(letter.headers)
    assert (headers["linepulse.error.code"], headers["linepulse.error.field"]) == (b"past_timestamp", b"ts")
    # Two hours of five machines' windows, not 26 years of M03's.
    assert len(consume_all(bootstrap, topics["kpis"], idle_s=2)) < 200
