"""Where Kafka's default partitioner puts a keyed record, for code that must reason per partition
without a broker (``analyze`` keeps stream time per partition, as the worker does)."""

from __future__ import annotations

from kafka.partitioner.default import murmur2

__all__ = ["key_partition"]


def key_partition(key: str, partitions: int) -> int:
    """The partition of ``key`` on a topic of ``partitions`` partitions: murmur2 of its UTF-8
    bytes, as the Java, kafka-python and aiokafka producers compute it."""
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions
