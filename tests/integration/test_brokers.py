"""The test brokers themselves: they start, hold data, survive a node crash, and die with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from service.brokers import BrokerEndpoint, KafkaCluster, MissingToolError, fetch_jars, jars_present
from service.brokers import jars as jars_module
from streams.topics import TopicNames, ensure_topics, topic_specs
from tests.integration.streams_fixtures import unique_topics

__all__: list[str] = []

# fresh_topic(bootstrap, *, partitions=1, replication=1, config=None) -> topic name (see conftest).
TopicFactory = Callable[..., str]

MESSAGES = 1000
MACHINES = 25
TWO_MB = 2 * 1024 * 1024


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], **config: object) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **config)
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in records]
        producer.flush(timeout=30)
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close(timeout=10)


def _consume_all(
    bootstrap: str, topic: str, partitions: int, expected: int, timeout_s: float = 20.0, **config: object
) -> list[tuple[int, bytes, bytes]]:
    """Read from the beginning until ``expected`` messages arrived (counted: Tansu's end offsets are off)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **config)
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        seen: list[tuple[int, bytes, bytes]] = []
        deadline = time.monotonic() + timeout_s
        while len(seen) < expected and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500).items():
                seen.extend((tp.partition, m.key, m.value) for m in batch)
        return seen
    finally:
        consumer.close()


def _keyed_records(count: int) -> list[tuple[bytes, bytes]]:
    return [(f"acme/m{i % MACHINES:02d}".encode(), f'{{"seq":{i}}}'.encode()) for i in range(count)]


def test_keyed_messages_round_trip(broker: BrokerEndpoint, fresh_topic: TopicFactory) -> None:
    topic = fresh_topic(broker.bootstrap_servers, partitions=3)
    records = _keyed_records(MESSAGES)
    _produce(broker.bootstrap_servers, topic, records)

    seen = _consume_all(broker.bootstrap_servers, topic, 3, MESSAGES)

    assert len(seen) == MESSAGES
    assert Counter(value for _, _, value in seen) == Counter(value for _, value in records)
    partitions_per_key: dict[bytes, set[int]] = {}
    for partition, key, _ in seen:
        partitions_per_key.setdefault(key, set()).add(partition)
    # One machine's events stay on one partition (the telemetry contract depends on it).
    assert all(len(parts) == 1 for parts in partitions_per_key.values())
    assert len({p for parts in partitions_per_key.values() for p in parts}) > 1


def test_consumer_group_reads_everything(broker: BrokerEndpoint, fresh_topic: TopicFactory) -> None:
    topic = fresh_topic(broker.bootstrap_servers, partitions=3)
    _produce(broker.bootstrap_servers, topic, _keyed_records(300))
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap_servers,
        group_id=f"group-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        # Tansu holds a group's first join for about half the session timeout.
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    try:
        count = 0
        deadline = time.monotonic() + 25
        while count < 300 and time.monotonic() < deadline:
            count += sum(len(batch) for batch in consumer.poll(timeout_ms=500).values())
        consumer.commit()
    finally:
        consumer.close()
    assert count == 300


def test_two_megabyte_message_is_accepted(broker: BrokerEndpoint, fresh_topic: TopicFactory) -> None:
    """The worker, not the broker, must see oversized telemetry so it can dead-letter it."""
    topic = fresh_topic(broker.bootstrap_servers)
    payload = os.urandom(TWO_MB)
    _produce(broker.bootstrap_servers, topic, [(b"acme/big", payload)], max_request_size=4 * TWO_MB)

    big_fetch = {"max_partition_fetch_bytes": 4 * TWO_MB, "fetch_max_bytes": 4 * TWO_MB}
    seen = _consume_all(broker.bootstrap_servers, topic, 1, 1, **big_fetch)

    assert [value for _, _, value in seen] == [payload]


def _leader_of_partition_0(bootstrap: str, topic: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        (described,) = admin.describe_topics([topic])
    finally:
        admin.close()
    leaders: dict[int, int] = {p["partition_index"]: p["leader_id"] for p in described["partitions"]}
    return leaders[0]


def test_replicated_topic_survives_a_killed_broker(
    kafka_cluster3: KafkaCluster, fresh_topic: TopicFactory
) -> None:
    bootstrap = kafka_cluster3.bootstrap_servers
    topic = fresh_topic(bootstrap, partitions=3, replication=3)
    _produce(bootstrap, topic, _keyed_records(200))
    victim = _leader_of_partition_0(bootstrap, topic) - 1  # node ids are 1-based

    kafka_cluster3.kill_broker(victim)
    try:
        # acks=all with min.insync.replicas=2 still succeeds on the two survivors.
        _produce(bootstrap, topic, _keyed_records(200), request_timeout_ms=15000)
        seen = _consume_all(bootstrap, topic, 3, 400)
        assert len(seen) == 400
        assert _leader_of_partition_0(bootstrap, topic) - 1 != victim
    finally:
        kafka_cluster3.start_broker(victim)


def test_fetch_jars_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        libs = fetch_jars()
    except MissingToolError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(str(exc))
    marker = libs.parent / ".complete"
    assert jars_present() and marker.is_file()
    before = marker.stat().st_mtime_ns

    def no_maven(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"mvn ran again: {args}")

    monkeypatch.setattr(subprocess, "run", no_maven)
    assert fetch_jars() == libs
    assert marker.stat().st_mtime_ns == before


def test_incomplete_jar_cache_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    libs = jars_module.libs_dir(tmp_path)
    libs.mkdir(parents=True)
    (libs / "kafka_2.13-half-written.jar").write_bytes(b"")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))

    assert not jars_present(tmp_path)
    with pytest.raises(MissingToolError, match="apt-get install maven"):
        fetch_jars(tmp_path)


_ORPHAN_SCRIPT = """
import sys, time
from service.brokers import TansuBroker
broker = TansuBroker().start()
print(broker.bootstrap_servers, flush=True)
time.sleep(600)
"""


def test_broker_dies_with_its_parent(tansu: object) -> None:
    """A SIGKILLed test run must not leave brokers behind (PR_SET_PDEATHSIG).

    Requesting ``tansu`` only applies its skip/fail policy when the binary is unavailable.
    """
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert parent.stdout is not None
    bootstrap = parent.stdout.readline().decode().strip()
    port = bootstrap.rpartition(":")[2]
    children = subprocess.run(
        ["pgrep", "-P", str(parent.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert len(children) == 1, f"expected one tansu child of {parent.pid}, found {children} ({bootstrap})"
    child = int(children[0])

    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child), f"tansu {child} on port {port} outlived its parent"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has already exited; it only waits for its adoptive parent to reap it.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_topics_on_three_replicas_need_two_in_sync_for_a_write(kafka_cluster3: KafkaCluster) -> None:
    """acks=all is only as strong as min.insync.replicas: linepulse's own topics set 2 themselves,
    so a cluster whose brokers keep the stock default (1) still has every acknowledged record on
    two brokers."""
    bootstrap = kafka_cluster3.bootstrap_servers
    specs = topic_specs(TopicNames(**unique_topics()), 3, 3)
    ensure_topics(bootstrap, specs)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    resources = [ConfigResource(ConfigResourceType.TOPIC, spec.name) for spec in specs if spec.create]
    try:
        # The request goes to any broker, and one that has not yet applied the new topics' metadata
        # (a broker the test before restarted, say) answers UnknownTopicOrPartition, which
        # kafka-python hands over as a topic with no configs: ask again.
        deadline = time.monotonic() + 30
        while True:
            described = admin.describe_configs(resources, config_filter="all")
            if all(described["topic"].get(resource.name) for resource in resources):
                break
            assert time.monotonic() < deadline, f"no configs for some of the topics: {described}"
            time.sleep(0.5)
    finally:
        admin.close()
    created = [spec for spec in specs if spec.create]
    assert len(created) == 7
    for spec in created:
        entry = described["topic"][spec.name]["min.insync.replicas"]
        # The topic's own setting, not the dev cluster's broker default (also 2).
        assert (str(entry["value"]), entry["config_source"]) == ("2", "DYNAMIC_TOPIC_CONFIG"), spec.name
