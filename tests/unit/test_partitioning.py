"""key_partition agrees with the producers' own partitioner, so analyze's per-partition stream time
matches the worker's."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from streams.partitioning import key_partition


def test_key_partition_is_the_workers_producer_partitioner() -> None:
    # The worker sends through aiokafka (the simulator through kafka-python, whose murmur2 this is);
    # aiokafka carries its own murmur2.
    partitions = list(range(7))
    for index in range(500):
        key = f"tenant{index % 3}/M{index:03d}"
        assert key_partition(key, 7) == DefaultPartitioner()(key.encode(), partitions, partitions)


def test_key_partition_matches_the_java_client() -> None:
    # murmur2 values from Apache Kafka's own UtilsTest (signed 32-bit, as Java computes them): a
    # Java producer puts these keys where analyze assumes they are.
    java_murmur2 = {"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536}
    for key, hashed in java_murmur2.items():
        for partitions in (1, 3, 12, 1000):
            assert key_partition(key, partitions) == (hashed & 0x7FFFFFFF) % partitions
