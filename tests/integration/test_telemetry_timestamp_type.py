"""The telemetry topic's timestamp type: linepulse creates it with LogAppendTime, and warns (never
alters) when an existing one carries the producers' CreateTime.

Why: the future check measures an event time from its message's Kafka timestamp (streams.decode). A
producer whose clock runs ahead stamps its CreateTime with that clock too, so only the broker's
append time catches its far-future events. Tansu ignores the topic config (its messages always carry
the producer's CreateTime) and does not implement DescribeConfigs: the start says so, and goes on.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

from service.brokers import BrokerEndpoint, KafkaCluster
from streams.exceptions import TopicMismatch
from streams.topics import (
    LOG_APPEND_TIME,
    TIMESTAMP_TYPE,
    TopicNames,
    _describe_configs,
    ensure_topics,
    topic_specs,
)
from tests.integration.conftest import TopicFactory
from tests.integration.streams_fixtures import unique_topics

AHEAD_MS = 50 * 60_000  # within the broker's default message.timestamp.after.max.ms (one hour)
_LOG_APPEND_TIME_TYPE = 1  # a record's timestamp_type: 0 CreateTime, 1 LogAppendTime


def _timestamp_type(bootstrap: str, topic: str) -> str:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={TIMESTAMP_TYPE: None})
        described = admin.describe_configs([resource], config_filter="all")
    finally:
        admin.close()
    return str(described["topic"][topic][TIMESTAMP_TYPE]["value"])


def _produce_ahead_and_read_back(bootstrap: str, topic: str, created_ms: int) -> tuple[int, int]:
    """(timestamp, timestamp_type) of a message produced with CreateTime ``created_ms``, as read."""
    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all")
    try:
        producer.send(topic, key=b"demo/M01", value=b"{}", timestamp_ms=created_ms, partition=0).get(60)
    finally:
        producer.close(timeout=30)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","), enable_auto_commit=False, consumer_timeout_ms=10_000
    )
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        [message] = list(consumer)
    finally:
        consumer.close()
    return int(message.timestamp), int(message.timestamp_type)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the topic setup warned about (kafka-python's own connection errors aside)."""
    return [r.getMessage() for r in caplog.records if r.name == "streams.topics"]


def test_linepulse_creates_the_telemetry_topic_with_the_brokers_clock(
    broker: BrokerEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap = broker.bootstrap_servers
    names = TopicNames(**unique_topics())
    with caplog.at_level(logging.WARNING, logger="streams.topics"):
        ensure_topics(bootstrap, topic_specs(names, 3, 1))
    sent_ms = int(time.time() * 1000)
    stamp, kind = _produce_ahead_and_read_back(bootstrap, names.telemetry, sent_ms + AHEAD_MS)
    if broker.name == "apache-kafka":
        assert _timestamp_type(bootstrap, names.telemetry) == LOG_APPEND_TIME
        assert kind == _LOG_APPEND_TIME_TYPE
        assert abs(stamp - sent_ms) < 60_000, "the broker's clock, not the producer's 50 min ahead"
        assert not _warnings(caplog)
    else:
        # Tansu keeps the producer's CreateTime whatever the config: the start says so, once.
        [text] = _warnings(caplog)
        assert "Tansu" in text and TIMESTAMP_TYPE in text and "producers' clocks" in text, text
        assert stamp == sent_ms + AHEAD_MS


def test_an_existing_create_time_telemetry_topic_is_warned_about_not_altered(
    apache_kafka: KafkaCluster, fresh_topic: TopicFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap = apache_kafka.bootstrap_servers
    topics = unique_topics()
    topics["telemetry"] = fresh_topic(bootstrap, partitions=3, prefix="telemetry-createtime")
    names = TopicNames(**topics)
    with caplog.at_level(logging.WARNING, logger="streams.topics"):
        ensure_topics(bootstrap, topic_specs(names, 3, 1))
    [text] = _warnings(caplog)
    assert "\n" not in text
    assert f"topic {names.telemetry!r} has {TIMESTAMP_TYPE}=CreateTime" in text
    fix = (
        f"kafka-configs.sh --alter --entity-type topics --entity-name {names.telemetry} "
        f"--add-config {TIMESTAMP_TYPE}={LOG_APPEND_TIME}"
    )
    assert fix in text
    assert _timestamp_type(bootstrap, names.telemetry) == "CreateTime"  # the user's topic, as it was


def test_the_config_check_waits_for_a_topic_the_broker_does_not_know_yet(apache_kafka: KafkaCluster) -> None:
    """Right after topics are created, the broker that gets DescribeConfigs may not have their
    metadata yet and answers UnknownTopicOrPartition (kafka-python hands that over as a topic with no
    configs): a moment to wait, not a reason to stop the start with "could not be read"."""
    bootstrap = apache_kafka.bootstrap_servers
    created: list[str] = []
    name = f"created-later-{uuid.uuid4().hex[:12]}"

    def create_later() -> None:
        time.sleep(1.5)
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            admin.create_topics([NewTopic(name, 1, 1, topic_configs={TIMESTAMP_TYPE: LOG_APPEND_TIME})])
        finally:
            admin.close()
        created.append(name)

    creator = threading.Thread(target=create_later)
    creator.start()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = _describe_configs(admin, [name], wait_s=30)
        creator.join()
        assert created == [name]
        assert described is not None and described[name][TIMESTAMP_TYPE] == LOG_APPEND_TIME

        never = f"never-created-{uuid.uuid4().hex[:12]}"
        refused = f"no configs of \\[{never!r}\\] in 0.5 s \\(topics it does not know, or no permission"
        with pytest.raises(TopicMismatch, match=refused):
            _describe_configs(admin, [never], wait_s=0.5)
    finally:
        creator.join()
        admin.close()
