"""Where simulated records go: a JSON Lines file (or stdout) or a Kafka topic."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import orjson

from service.output_file import OutputFile
from service.simulator.exceptions import SpecError

__all__ = ["JsonlSink", "KafkaSink", "ProducerFactory", "Sink", "require_topic"]


class Sink(Protocol):
    def write(self, record: Mapping[str, object]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """One compact JSON object per line. ``"-"`` writes to standard output. A write error is an
    OutputError naming ``option`` and the file."""

    def __init__(self, path: str | Path, option: str = "--out") -> None:
        self._stream = OutputFile(path, option)
        self.written = 0

    def write(self, record: Mapping[str, object]) -> None:
        self._stream.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        self.written += 1

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self._stream.close()


ProducerFactory = Callable[..., Any]


def _kafka_producer(**config: Any) -> Any:
    from kafka import KafkaProducer  # imported lazily: file output must work without a broker library

    return KafkaProducer(**config)


class KafkaSink:
    """Key ``"{tenant}/{machine}"`` keeps a machine's events in order on one partition."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        linger_ms: int = 20,
        producer_factory: ProducerFactory = _kafka_producer,
    ) -> None:
        self._topic = topic
        self._producer = producer_factory(
            bootstrap_servers=[server.strip() for server in bootstrap_servers.split(",") if server.strip()],
            acks="all",
            linger_ms=linger_ms,
            client_id="linepulse-simulator",
        )
        self.written = 0

    def write(self, record: Mapping[str, object]) -> None:
        key = f"{record['tenant']}/{record['machine']}".encode()
        self._producer.send(self._topic, key=key, value=orjson.dumps(record))
        self.written += 1

    def flush(self) -> None:
        self._producer.flush()

    def close(self) -> None:
        try:
            self._producer.flush()
        finally:
            self._producer.close()


def require_topic(bootstrap_servers: str, topic: str, timeout_s: float = 10.0) -> None:
    """Refuse a topic the cluster does not have, at once: the producer would wait a minute for its
    metadata and then fail with a traceback. The worker creates the topics it uses (clusters often
    do not create topics on first use), so a fresh cluster has none until a worker started once."""
    from streams.topics import admin_client  # kafka-python only once a Kafka sink is asked for

    with admin_client(bootstrap_servers, "linepulse-simulator", timeout_s) as admin:
        if topic not in admin.list_topics():
            raise SpecError(
                f"--topic: {topic!r} does not exist at {bootstrap_servers}: start the worker once "
                f"(it creates its topics) or create the topic with the telemetry topic's partition count"
            )
