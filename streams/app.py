"""Faust app factory: topics, the machine-state table and the telemetry agent, wired to one processor.

Nothing happens at import time; :func:`create_stream` builds a fresh app, so tests and the CLI can
make as many as they need. The agent body stays short: process one message with the shared
:class:`~streams.processing.TelemetryProcessor`, then route its results.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import faust

from models.anomaly.scoring import AnomalyModels
from models.machine import MachineState
from models.plant import PlantConfig
from streams.decode import Rejection
from streams.line_stream import add_line_view
from streams.lines import LineAggregator
from streams.live import LiveLines, LiveMachines
from streams.processing import Applied, Outcome, TelemetryProcessor, decode_state, encode_state
from streams.records import record_bytes
from streams.topics import MAX_MESSAGE_BYTES, TopicNames

__all__ = ["LinepulseStream", "StreamConfig", "StreamObserver", "create_stream", "dead_letter_headers"]


@dataclass(frozen=True, slots=True)
class StreamConfig:
    app_id: str
    bootstrap_servers: str
    topics: TopicNames
    partitions: int
    replication: int
    web_host: str
    web_port: int
    session_timeout_s: float
    data_dir: Path
    max_payload_bytes: int
    max_future_s: float
    commit_interval_s: float = 1.0


class StreamObserver(Protocol):
    """What the worker reports as it goes; the service layer turns it into Prometheus metrics."""

    def on_outcome(self, outcome: Outcome) -> None: ...

    def on_rebalance(self) -> None: ...


@dataclass(slots=True)
class LinepulseStream:
    app: faust.App
    processor: TelemetryProcessor
    live: LiveMachines
    lines: LiveLines
    config: StreamConfig

    def is_ready(self) -> bool:
        """Partitions assigned and table state recovered: safe to trust this worker's figures."""
        return _ready(self.app)


def _ready(app: Any) -> bool:
    recovery = app.tables.recovery
    return bool(recovery.completed.is_set() and not app.rebalancing and not recovery.in_recovery)


def dead_letter_headers(
    rejection: Rejection, topic: str, partition: int, offset: int
) -> list[tuple[str, bytes]]:
    """Kafka Connect-style context headers, so an operator can fix and replay the original bytes."""
    return [
        ("linepulse.error.code", rejection.code.encode()),
        ("linepulse.error.field", rejection.field.encode()),
        ("linepulse.error.reason", rejection.reason.encode()),
        ("linepulse.source.topic", topic.encode()),
        ("linepulse.source.partition", str(partition).encode()),
        ("linepulse.source.offset", str(offset).encode()),
    ]


def _brokers(bootstrap_servers: str) -> Sequence[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server.strip()]


def create_stream(
    config: StreamConfig,
    plant: PlantConfig,
    observer: StreamObserver,
    anomaly_models: AnomalyModels | None = None,
) -> LinepulseStream:
    app = faust.App(
        config.app_id,
        broker=_brokers(config.bootstrap_servers),
        store="memory://",
        datadir=str(config.data_dir),
        topic_partitions=config.partitions,
        topic_replication_factor=config.replication,
        topic_allow_declare=True,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=True,
        web_host=config.web_host,
        web_port=config.web_port,
        web_in_thread=False,
        broker_session_timeout=config.session_timeout_s,
        broker_heartbeat_interval=min(3.0, config.session_timeout_s / 3),
        broker_commit_interval=config.commit_interval_s,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_max_request_size=MAX_MESSAGE_BYTES,
        consumer_max_fetch_size=MAX_MESSAGE_BYTES,
        table_standby_replicas=0,
    )
    processor = TelemetryProcessor(
        plant,
        max_payload_bytes=config.max_payload_bytes,
        max_future_ms=int(config.max_future_s * 1000),
        anomaly_models=anomaly_models,
    )
    live = LiveMachines()
    telemetry = app.topic(
        config.topics.telemetry, key_type=bytes, value_type=bytes, partitions=config.partitions
    )
    kpis = app.topic(config.topics.kpis, key_type=bytes, value_type=bytes)
    alerts = app.topic(config.topics.alerts, key_type=bytes, value_type=bytes)
    dead_letters = app.topic(config.topics.dead_letters, key_type=bytes, value_type=bytes)
    # Co-partitioned with telemetry (same count, same key): a machine's commands reach its worker.
    control = app.topic(config.topics.control, key_type=bytes, value_type=bytes, partitions=config.partitions)
    # Keyed like telemetry, so a machine's state lives on its telemetry partition (co-partitioned).
    states = app.Table("machine-state", key_type=bytes, value_type=bytes, partitions=config.partitions)
    # Decoded states of this worker's machines; the table stays the source of truth.
    decoded: dict[str, MachineState] = {}
    # Keys of machines whose effects are being published, not yet in the table. The telemetry and
    # control agents share machine states and interleave at awaits; each waits for the other's
    # in-flight message on the same machine, or the table could store a state whose records were
    # never sent.
    publishing: dict[bytes, asyncio.Event] = {}

    def load_state(key: str) -> MachineState | None:
        state = decoded.get(key)
        if state is None:
            raw = states.get(key.encode())
            if raw is not None:
                state = decoded[key] = decode_state(raw)
        return state

    async def publish(outcome: Applied) -> None:
        """Send and wait for the broker's ack *before* the state is written.

        Then a crash can only make the message be processed again (the records are re-sent with the
        same content and ids), never leave a state that says "applied" with its records lost.
        """
        key = outcome.state.key.encode()
        pending = [await kpis.send(key=key, value=record_bytes(kpi)) for kpi in outcome.kpis]
        pending += [await alerts.send(key=key, value=record_bytes(alert)) for alert in outcome.alerts]
        for delivery in pending:
            await delivery

    @app.agent(telemetry, concurrency=1)  # >1 can commit past an in-flight message (faust issue 606)
    async def process_telemetry(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            await _wait_for(message.key)  # a control command on this machine in flight
            outcome = processor.process(
                message.key,
                message.value,
                now_ms=int(time.time() * 1000),
                load_state=load_state,
                source=f"{message.topic}:{message.partition}",
                offset=message.offset,
            )
            if isinstance(outcome, Rejection):
                if outcome.machine_key is not None:
                    decoded.pop(outcome.machine_key, None)  # the table keeps the last good state
                headers = dead_letter_headers(outcome, message.topic, message.partition, message.offset)
                await dead_letters.send(key=message.key, value=message.value, headers=headers)
            elif not outcome.duplicate:
                await _publish_then_store(outcome)
            observer.on_outcome(outcome)

    async def _publish_then_store(outcome: Applied) -> None:
        key = outcome.state.key.encode()
        # While this machine's effects are in flight, the other agent must not touch its state.
        done = publishing[key] = asyncio.Event()
        try:
            await publish(outcome)
        except BaseException:
            # The cached state already holds this message's effect; the table does not.
            decoded.pop(outcome.state.key, None)
            raise
        finally:
            # No await from here to the table write: nothing interleaves before it.
            del publishing[key]
            done.set()
        decoded[outcome.state.key] = outcome.state
        states[key] = encode_state(outcome.state)
        live.update(outcome.state)

    async def _wait_for(key: bytes | None) -> None:
        while key is not None and (done := publishing.get(key)) is not None:
            await done.wait()

    @app.agent(control, concurrency=1)
    async def process_control(stream: faust.StreamT[bytes]) -> None:
        """Operator commands (``linepulse baseline reset``), applied like telemetry: exactly once."""
        async for event in stream.events():
            message = event.message
            await _wait_for(message.key)
            outcome = processor.process_control(
                message.key,
                message.value,
                load_state=load_state,
                source=f"{message.topic}:{message.partition}",
                offset=message.offset,
            )
            if isinstance(outcome, Rejection):
                if outcome.machine_key is not None:
                    decoded.pop(outcome.machine_key, None)  # the table keeps the last good state
                headers = dead_letter_headers(outcome, message.topic, message.partition, message.offset)
                await dead_letters.send(key=message.key, value=message.value, headers=headers)
            elif not outcome.duplicate:
                await _publish_then_store(outcome)

    async def dead_letter(message: Any, rejection: Rejection) -> None:
        headers = dead_letter_headers(rejection, message.topic, message.partition, message.offset)
        await dead_letters.send(key=message.key, value=message.value, headers=headers)

    lines = LiveLines()
    aggregator = LineAggregator(plant, processor.engine.calendar, processor.config_version)
    add_line_view(app, config.topics, config.partitions, aggregator, lines, dead_letter)

    def _forget_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        decoded.clear()
        live.forget_all()
        observer.on_rebalance()

    app.on_partitions_revoked.connect(_forget_revoked)

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def _show_recovered_machines() -> None:
        # After a restart or rebalance, machines that send nothing yet are still shown from the table.
        if not _ready(app):
            return
        for raw_key, raw_state in list(states.items()):
            key = raw_key.decode()
            if key not in live:
                live.update(load_state(key) or decode_state(raw_state))

    return LinepulseStream(app=app, processor=processor, live=live, lines=lines, config=config)
