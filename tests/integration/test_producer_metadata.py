"""A record queued for a topic the producer knows only from its full metadata fetch is not stranded
when another topic is first sent to (streams/producer_metadata.py).

Found on a replay worker (a new app id) stuck at its first batch: its line-view changelog, created by
Faust at start, was "not found in cluster metadata" at the first send, and the records of the batch
then in flight (changelog or ``kpis-by-line``) were unacknowledged until a SIGTERM 169 s later. The
first send to the new topic narrows aiokafka's metadata refreshes to that topic, and the cache drops
the others. Here the record waits in the producer's accumulator (``linger_ms``) while that happens,
as a worker's does behind the request in flight to the same broker.

The worker's producer learns its topics the way these tests' producer does: Faust refreshes the
producer's metadata after creating a topic (the table changelogs, at every start), before anything
was sent, so that refresh fetches every topic.
"""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.errors import NotLeaderForPartitionError
from kafka.admin import KafkaAdminClient, NewTopic

from service.brokers import KafkaCluster
from streams.producer_metadata import pin_topics
from tests.integration.conftest import TopicFactory

LINGER_MS = 2000  # the queued record waits this long: the narrowing refresh takes milliseconds
REQUEST_TIMEOUT_MS = 10_000  # a record without a leader expires then (the worker's: 20 minutes)
ACK_WAIT_S = 6.0  # acknowledged within this much (after the linger), or stranded


async def _queued_record_acknowledged(bootstrap: str, known: str, pin: bool) -> bool:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=LINGER_MS, request_timeout_ms=REQUEST_TIMEOUT_MS
    )
    await producer.start()
    # What Faust does after creating a topic (its changelogs at start): a refresh while no topic is
    # asked for fetches all of them, so ``known`` is in the cache without being asked for.
    await producer.client.force_metadata_update()
    assert producer.client.cluster.partitions_for_topic(known) and not producer.client._topics
    new = f"created-after-start-{uuid.uuid4().hex[:10]}"
    try:
        if pin:
            pin_topics(producer.client, [known, new])
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="linepulse-tests")
        try:
            await asyncio.to_thread(admin.create_topics, [NewTopic(new, 3, 1)])
        finally:
            admin.close()
        queued = await producer.send(known, b"queued", key=b"k")
        await producer.send_and_wait(new, b"first", key=b"k")  # not cached: its metadata is asked for
        try:
            await asyncio.wait_for(asyncio.shield(queued), LINGER_MS / 1000 + ACK_WAIT_S)
        except (TimeoutError, NotLeaderForPartitionError):  # the latter: expired without a leader
            return False
        return True
    finally:
        await producer.stop()  # a stranded record expires after REQUEST_TIMEOUT_MS


def test_a_pinned_topic_keeps_its_queued_record_deliverable(
    apache_kafka: KafkaCluster, fresh_topic: TopicFactory
) -> None:
    bootstrap = apache_kafka.bootstrap_servers
    known = fresh_topic(bootstrap, partitions=3)
    assert asyncio.run(_queued_record_acknowledged(bootstrap, known, pin=True))


def test_without_the_pin_the_queued_record_is_stranded(
    apache_kafka: KafkaCluster, fresh_topic: TopicFactory
) -> None:
    """aiokafka's behaviour that the pin guards against: should this fail after an upgrade, the pin
    (and AIOKAFKA_ADD_TOPIC_SHA256) may go."""
    bootstrap = apache_kafka.bootstrap_servers
    known = fresh_topic(bootstrap, partitions=3)
    assert not asyncio.run(_queued_record_acknowledged(bootstrap, known, pin=False))
