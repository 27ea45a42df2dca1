"""Configuration files for combined broker+controller Apache Kafka nodes in KRaft mode on loopback."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MAX_MESSAGE_BYTES", "NodePorts", "log4j2_properties", "new_cluster_id", "server_properties"]

# Large enough that an oversized telemetry message (tests send 2 MB) reaches the worker and is
# dead-lettered there, instead of being refused by the broker before linepulse ever sees it.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class NodePorts:
    """One node's listeners: ``broker`` for clients and replication, ``controller`` for the Raft quorum."""

    broker: int
    controller: int


def new_cluster_id() -> str:
    """A random Kafka cluster id: 16 random bytes, URL-safe base64 without padding (as StorageTool makes)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        # Kafka's own generator rejects ids starting with '-', which command lines would take for options.
        if not cluster_id.startswith("-"):
            return cluster_id


def server_properties(node_id: int, nodes: Sequence[NodePorts], data_dir: Path) -> str:
    """``server.properties`` for node ``node_id`` (1-based) of a cluster made of ``nodes``."""
    me = nodes[node_id - 1]
    count = len(nodes)
    min_isr = 2 if count >= 3 else 1
    voters = ",".join(f"{i}@127.0.0.1:{ports.controller}" for i, ports in enumerate(nodes, start=1))
    settings: dict[str, str | int] = {
        "process.roles": "broker,controller",
        "node.id": node_id,
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{me.broker},CONTROLLER://127.0.0.1:{me.controller}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{me.broker}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        # Topics are declared by linepulse itself; a typo must fail rather than create a stray topic.
        "auto.create.topics.enable": "false",
        "num.partitions": 1,
        "offsets.topic.replication.factor": count,
        "transaction.state.log.replication.factor": count,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": count,
        "share.coordinator.state.topic.min.isr": min_isr,
        "min.insync.replicas": min_isr,
        # Fewer internal partitions make the first consumer group join quick; semantics are unchanged.
        "offsets.topic.num.partitions": 10,
        "transaction.state.log.num.partitions": 10,
        "group.initial.rebalance.delay.ms": 0,
        "message.max.bytes": MAX_MESSAGE_BYTES,
        "replica.fetch.max.bytes": MAX_MESSAGE_BYTES,
        # Three JVMs share two cores and 512 MB heaps each: keep thread pools and the cleaner buffer small.
        "num.network.threads": 2,
        "num.io.threads": 2,
        "num.replica.fetchers": 1,
        "num.recovery.threads.per.data.dir": 1,
        "background.threads": 2,
        "log.cleaner.dedupe.buffer.size": 32 * 1024 * 1024,
        # A killed node is fenced (and dropped from ISRs) within seconds, so broker-kill tests stay short.
        "broker.heartbeat.interval.ms": 500,
        "broker.session.timeout.ms": 4000,
        "replica.lag.time.max.ms": 10000,
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def log4j2_properties(log_file: Path) -> str:
    """Log4j 2 configuration: warnings to ``log_file``, plus the one INFO line saying the node started."""
    return (
        "status = warn\n"
        "appender.file.type = File\n"
        "appender.file.name = FILE\n"
        f"appender.file.fileName = {log_file}\n"
        "appender.file.layout.type = PatternLayout\n"
        "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = WARN\n"
        "rootLogger.appenderRef.file.ref = FILE\n"
        "logger.raft.name = kafka.server.KafkaRaftServer\n"
        "logger.raft.level = INFO\n"
    )
