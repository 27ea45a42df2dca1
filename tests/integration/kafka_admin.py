"""What the integration tests ask the broker directly: a topic's size limit, a group's committed offsets."""

from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

__all__ = ["committed_offsets", "committed_total", "set_max_message_bytes"]


def set_max_message_bytes(bootstrap: str, topic: str, limit: int) -> None:
    """Change the topic's ``max.message.bytes``: a small one makes the broker refuse records."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": str(limit)})
        admin.alter_configs([resource])
    finally:
        admin.close()


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int = 3) -> dict[int, int]:
    """The group's committed offset of each partition (0 where it committed none)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) or 0 for p in range(partitions)}
    finally:
        consumer.close()


def committed_total(bootstrap: str, group: str, topic: str, partitions: int = 3) -> int:
    """How many of the topic's messages the group has committed, over all partitions."""
    return sum(committed_offsets(bootstrap, group, topic, partitions).values())
