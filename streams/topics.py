"""The topics linepulse reads and writes, and creating them up front with the right partitions.

Topics are created explicitly (never by a producer's auto-create), because a Faust table's changelog
must have as many partitions as its source topic; a telemetry topic auto-created with one partition
would make the worker crash on the first rebalance.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from streams.exceptions import TopicMismatch

__all__ = ["TopicNames", "TopicSpec", "ensure_topics", "partition_count", "topic_specs"]

# Large enough to keep a bad 2 MB message byte for byte in the dead-letter topic.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TopicNames:
    telemetry: str = "telemetry"
    kpis: str = "kpis"
    alerts: str = "alerts"
    dead_letters: str = "telemetry-dead-letters"
    line_kpis: str = "line-kpis"
    # Internal: KPI records regrouped by line, so one worker folds each line's machines.
    kpis_by_line: str = "kpis-by-line"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(names: TopicNames, partitions: int, replication: int) -> list[TopicSpec]:
    big = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
    return [
        TopicSpec(names.telemetry, partitions, replication, big),
        TopicSpec(names.kpis, partitions, replication),
        TopicSpec(names.alerts, partitions, replication),
        TopicSpec(names.dead_letters, partitions, replication, big),
        TopicSpec(names.line_kpis, partitions, replication),
        TopicSpec(names.kpis_by_line, partitions, replication),
    ]


def ensure_topics(
    bootstrap_servers: str, specs: Sequence[TopicSpec], timeout_s: float = 30.0
) -> dict[str, int]:
    """Create missing topics; return every topic's actual partition count.

    An existing telemetry topic keeps its partition count (the worker adapts to it); changing the
    count of a keyed topic would move machines between partitions, so it is never done here.
    """
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers.split(","),
        client_id="linepulse-admin",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        existing = set(admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            new_topics = [
                NewTopic(spec.name, spec.partitions, spec.replication, topic_configs=spec.config)
                for spec in missing
            ]
            # Another worker may create them concurrently: fine, the counts are read below.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new_topics, timeout_ms=int(timeout_s * 1000))
        return {spec.name: partition_count(admin, spec.name) for spec in specs}
    finally:
        admin.close()


def partition_count(admin: KafkaAdminClient, topic: str) -> int:
    described = admin.describe_topics([topic])
    if not described or described[0].get("error_code", 0) != 0:
        raise TopicMismatch(f"topic {topic!r} could not be described: {described}")
    return len(described[0]["partitions"])
