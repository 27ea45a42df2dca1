"""streams.refetch on a real broker (Apache Kafka): a partition the loop's batch left where it was
is sought back to the first record not delivered; one moved since (a seek, a new assignment) is not.

aiokafka's own consumer takes the batches here, as Faust's consumer thread does for the worker;
tests/unit/test_refetch.py runs Faust's getmany around it.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from service.brokers import KafkaCluster
from streams.refetch import position_when_taken, seek_back_unless_moved
from tests.integration.conftest import TopicFactory
from tests.integration.harness import produce

RECORDS = 10


async def _take_all(consumer: AIOKafkaConsumer, tp: TopicPartition) -> list[int]:
    offsets: list[int] = []
    while await consumer.position(tp) < RECORDS:
        batch = await consumer.getmany(tp, timeout_ms=5_000)
        offsets += [record.offset for record in batch.get(tp, [])]
    return offsets


async def _scenario(bootstrap: str, topic: str) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        assert await _take_all(consumer, tp) == list(range(RECORDS))

        # Left where the batch left it: sought back, and the records come again.
        taken = position_when_taken(consumer, [tp])
        assert seek_back_unless_moved(consumer, {tp: 3}, taken) == [tp]
        assert await _take_all(consumer, tp) == list(range(3, RECORDS))

        # Sought since (a recovery's seek knows better): left alone.
        taken = position_when_taken(consumer, [tp])
        consumer.seek(tp, 7)
        assert seek_back_unless_moved(consumer, {tp: 3}, taken) == []
        assert await consumer.position(tp) == 7

        # A new assignment, even at the same position: left alone.
        await _take_all(consumer, tp)
        taken = position_when_taken(consumer, [tp])
        consumer.assign([tp])
        consumer.seek(tp, RECORDS)
        assert seek_back_unless_moved(consumer, {tp: 3}, taken) == []
        assert await consumer.position(tp) == RECORDS
    finally:
        await consumer.stop()


def test_a_partition_is_sought_back_only_if_nothing_moved_it(
    apache_kafka: KafkaCluster, fresh_topic: TopicFactory
) -> None:
    bootstrap = apache_kafka.bootstrap_servers
    topic = fresh_topic(bootstrap)
    produce(bootstrap, topic, [(None, str(i).encode()) for i in range(RECORDS)])
    asyncio.run(_scenario(bootstrap, topic))
