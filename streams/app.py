"""Faust app factory: topics, the machine-state table and the telemetry agent, wired to one processor.

Nothing happens at import time; :func:`create_stream` builds a fresh app, so tests and the CLI can
make as many as they need. The agent takes messages in batches (``stream.take_events``): each message
is processed with the shared :class:`~streams.processing.TelemetryProcessor`, the batch's records are
published, then each machine state the batch changed is written once (:mod:`streams.state_table`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import faust

from models.anomaly.scoring import AnomalyModels
from models.plant import PlantConfig
from streams.batch import BatchApplier
from streams.dead_letters import dead_letter_headers
from streams.decode import MAX_PAST_MS_DEFAULT, Rejection
from streams.fetch_wait import app_with_fetch_wait
from streams.heap import freeze_startup_heap
from streams.line_stream import add_line_view
from streams.lines import LineAggregator
from streams.live import LiveLines, LiveMachines, show_recovered_machines
from streams.outbox import Outbox, Outgoing, Owner, PartitionLost, SendAbandoned, raise_if_lost
from streams.ownership import Ownership
from streams.processing import Applied, Outcome, TelemetryProcessor
from streams.producer_metadata import pin_topics, producer_client
from streams.records import record_bytes
from streams.state_table import StateTable
from streams.stop_deadline import StopDeadline
from streams.topics import (
    DEAD_LETTER_MAX_MESSAGE_BYTES,
    MAX_MESSAGE_BYTES,
    TABLES,
    TopicNames,
    changelog_topic,
    durability_config,
)
from streams.withhold import withhold_acks

__all__ = ["LinepulseStream", "StreamConfig", "StreamObserver", "create_stream"]

log = logging.getLogger(__name__)


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
    max_past_s: float = MAX_PAST_MS_DEFAULT / 1000
    commit_interval_s: float = 1.0
    # Messages are applied in batches of up to this many, or what arrived within batch_within_s:
    # each changed machine state is then written once per batch. The wait bounds the added latency.
    batch_max_messages: int = 1000
    batch_within_s: float = 0.05
    # Longest the broker may hold a fetch that finds no data (streams.fetch_wait: why not Faust's 1.5 s).
    fetch_wait_s: float = 0.05
    # A send unacknowledged this long makes the worker stuck (/ready 503): an outage, not a slow ack.
    send_stuck_after_s: float = 5.0
    # A worker stopping with a send abandoned (broker unreachable) exits at the latest this much later.
    stop_grace_s: float = 10.0


class StreamObserver(Protocol):
    """What the worker reports as it goes; the service layer turns it into Prometheus metrics."""

    def on_outcome(self, outcome: Outcome) -> None: ...

    def on_records(self, outcome: Applied) -> None:
        """Records no message of their own caused (silence ticks, stops judged on stream time)."""

    def on_rebalance(self) -> None: ...

    def on_send_failed(self, topic: str) -> None: ...

    def on_send_stuck(self, stuck: bool) -> None: ...

    def on_batch_fenced(self, topic: str) -> None:
        """A batch of ``topic`` was not acked: the worker lost its partition (streams.ownership)."""


@dataclass(slots=True)
class LinepulseStream:
    app: faust.App
    processor: TelemetryProcessor
    live: LiveMachines
    lines: LiveLines
    config: StreamConfig
    outbox: Outbox
    # Every topic the agents take batches from, and every topic the worker writes (changelogs by
    # Faust's names): the service starts its per-topic failure counters at 0 from these.
    sources: tuple[str, ...]
    written: tuple[str, ...]

    def is_ready(self) -> bool:
        """Partitions assigned, table state recovered and records being sent: safe to trust this
        worker's figures (a worker retrying a refused send is stuck, :mod:`streams.outbox`)."""
        return _ready(self.app) and not self.outbox.stuck


def _ready(app: Any) -> bool:
    recovery = app.tables.recovery
    return bool(recovery.completed.is_set() and not app.rebalancing and not recovery.in_recovery)


def _brokers(bootstrap_servers: str) -> Sequence[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server.strip()]


def create_stream(
    config: StreamConfig,
    plant: PlantConfig,
    observer: StreamObserver,
    anomaly_models: AnomalyModels | None = None,
) -> LinepulseStream:
    app = app_with_fetch_wait(
        config.fetch_wait_s,
        config.app_id,
        # streams.delivery: no task race per message; records fetched while a rebalance's recovery
        # seeks and clears the stream buffers are held back and fetched again (it lost them before,
        # tests/integration/test_sigterm_restart.py).
        direct_delivery=True,
        monitor_sensor=False,  # linepulse has its own metrics; Faust's Monitor costs per event
        broker=_brokers(config.bootstrap_servers),
        store="memory://",
        datadir=str(config.data_dir),
        topic_partitions=config.partitions,
        topic_replication_factor=config.replication,
        topic_allow_declare=True,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=True,
        # web_host is only the host name in Faust's own URLs; web_bind is where it listens (by
        # default every interface, which served every tenant's pages to the whole network).
        web_host=config.web_host,
        web_bind=config.web_host,
        web_port=config.web_port,
        web_in_thread=False,
        # Faust's own /table/NAME/KEY/ serves any machine's state (and /router/ the partition map)
        # to whoever reaches the port, past the API's tenant filter: off.
        web_tables_enabled=False,
        web_router_enabled=False,
        broker_session_timeout=config.session_timeout_s,
        broker_heartbeat_interval=min(3.0, config.session_timeout_s / 3),
        broker_commit_interval=config.commit_interval_s,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # A dead letter is a telemetry message of up to MAX_MESSAGE_BYTES (its own headers included)
        # plus linepulse's error headers (streams.dead_letters).
        producer_max_request_size=DEAD_LETTER_MAX_MESSAGE_BYTES,
        consumer_max_fetch_size=MAX_MESSAGE_BYTES,
        table_standby_replicas=0,
    )
    processor = TelemetryProcessor(
        plant,
        max_payload_bytes=config.max_payload_bytes,
        max_future_ms=int(config.max_future_s * 1000),
        max_past_ms=int(config.max_past_s * 1000),
        anomaly_models=anomaly_models,
    )
    live = LiveMachines({machine.key for machine in plant.machines})
    telemetry = app.topic(
        config.topics.telemetry, key_type=bytes, value_type=bytes, partitions=config.partitions
    )
    kpis = app.topic(config.topics.kpis, key_type=bytes, value_type=bytes)
    alerts = app.topic(config.topics.alerts, key_type=bytes, value_type=bytes)
    dead_letters = app.topic(config.topics.dead_letters, key_type=bytes, value_type=bytes)
    # Co-partitioned with telemetry (same count, same key): a machine's commands reach its worker.
    control = app.topic(config.topics.control, key_type=bytes, value_type=bytes, partitions=config.partitions)
    # Keyed like telemetry, so a machine's state lives on its telemetry partition (co-partitioned).
    table = StateTable(
        app.Table(
            "machine-state",
            key_type=bytes,
            value_type=bytes,
            partitions=config.partitions,
            extra_topic_configs=durability_config(config.replication),
        )
    )
    # The telemetry and control agents share machine states and interleave at awaits. Each holds
    # this lock from applying to writing the states, or one could write a state the other staged
    # before that state's records were acknowledged.
    applying = asyncio.Lock()
    applier = BatchApplier(processor, table, config.topics.telemetry)

    # Every record is sent until the broker acknowledges it; a failed send waits, never skipped.
    outbox = Outbox(lambda: bool(app.should_stop), observer, stuck_after_s=config.send_stuck_after_s)
    # ...but only while the batch's partitions are still this worker's (streams.ownership: why).
    ownership = Ownership(app, config.session_timeout_s)
    stop_deadline = StopDeadline(config.stop_grace_s)

    def records_of(outcomes: Sequence[Outcome]) -> list[Outgoing]:
        records: list[Outgoing] = []
        for outcome in outcomes:
            if isinstance(outcome, Applied) and (outcome.kpis or outcome.alerts):
                key = outcome.state.key.encode()
                records += [Outgoing(kpis, key, record_bytes(kpi)) for kpi in outcome.kpis]
                records += [Outgoing(alerts, key, record_bytes(alert)) for alert in outcome.alerts]
        return records

    def dead_letter_of(message: Any, rejection: Rejection) -> Outgoing:
        # The original message whole, its headers too (as Kafka Connect's dead-letter queue keeps
        # them), then linepulse's: telemetry's and the line view's (streams.line_stream) alike.
        headers = dead_letter_headers(
            message.headers, rejection, message.topic, message.partition, message.offset
        )
        return Outgoing(dead_letters, message.key, message.value, headers)

    async def dead_letter(message: Any, rejection: Rejection, owner: Owner | None = None) -> None:
        await outbox.deliver([dead_letter_of(message, rejection)], owner)

    async def publish_then_write(records: Sequence[Outgoing], owner: Owner) -> None:
        """Send the records (dead letters, KPI records, alerts), wait for every ack, then write the
        staged states to the changelog, wait for those acks too, then to the local store.

        The states are written only *after* the records' acks: a crash can then only make messages
        be processed again (the records are re-sent with the same content and ids), never leave a
        state that says "applied" with its records lost. And the batch is acked (its offsets
        committed) only after the states' acks: a committed offset is always in a state on the
        changelog, which is what a restart or the partition's next owner recovers from.
        """
        # Taken before any await: a rebalance meanwhile clears the staged states, and the batch's
        # acks must still follow its states onto the changelog.
        changelog = table.changelog_records()
        try:
            # Fenced on the batch's source partitions: a worker that lost them must not write a
            # state after their next owner's (streams.ownership).
            await outbox.deliver(records, owner)
            await outbox.deliver(changelog, owner)
        except BaseException:
            table.forget_staged()  # their effects are in the cache only: reload from the table
            raise
        for state in table.write_staged():
            live.update(state)

    # Set once a batch was not applied. Nothing after it may be applied in this process: a later
    # message of the same machine would record an offset past it, and the next start would skip
    # it as a duplicate. (Faust's supervisor restarts a crashed agent, even while stopping.)
    halted: list[BaseException] = []

    async def process_batch(events: Sequence[faust.EventT[bytes]]) -> None:
        """Apply a batch, publish its dead letters and records, then write each changed state once.

        Faust acks the batch's events only after this returns, and this returns only once the
        broker has acknowledged the changed states' changelog records: a committed offset is always
        in a state on the changelog.
        """
        messages = [event.message for event in events]
        if halted:  # stopping or crashed: leave it to the next start, uncommitted
            withhold_acks(messages)
            return
        owner = ownership.claim(messages)
        async with applying:
            raise_if_lost(owner)  # fetched before a rebalance that has begun: not ours to apply
            # No clock: each message is judged against its own Kafka timestamp (streams.decode).
            # Stream time judges stops and ticks silent machines in there (streams.batch).
            outcomes = applier.apply(messages)
            rejected = [
                dead_letter_of(message, outcome)
                for message, outcome in zip(messages, outcomes, strict=True)
                if isinstance(outcome, Rejection)
            ]
            await publish_then_write([*rejected, *records_of(applier.in_order(outcomes))], owner)
        for outcome in outcomes:
            observer.on_outcome(outcome)
        for _, judged in applier.judged:
            observer.on_records(judged)

    def fenced(events: Sequence[faust.EventT[bytes]], error: PartitionLost) -> None:
        """The worker lost the batch's partitions before its records were all acknowledged: its
        acks are withheld (never committed here) and its next owner applies it again from the
        committed offset. No gap is left behind in this process: the rebalance that took the
        partitions seeks every partition still assigned back to its committed offset, and drops
        the cached states, so the worker goes on with what it still owns."""
        messages = [event.message for event in events]
        withhold_acks(messages)
        first = messages[0]
        log.warning(
            "a batch of %d message(s) from %s:%d@%d.. was not acknowledged: the worker lost the "
            "partition (%s)",
            len(messages),
            first.topic,
            first.partition,
            first.offset,
            error,
        )
        observer.on_batch_fenced(first.topic)

    async def not_applied(events: Sequence[faust.EventT[bytes]], error: BaseException) -> None:
        """The batch was not applied: its offsets must never be committed (Faust would ack it in
        take_events' ``finally``), and this worker must not go on past it (a later message of the
        same machine would mark it applied), so a worker not already stopping stops, failing."""
        withhold_acks(event.message for event in events)
        # Nothing after the gap may be applied, so no message in flight is: withholding them all
        # also lets a stopping consumer's wait_empty end (it waits for every delivered message,
        # and one left in take_events' buffer of a stopped agent would never be yielded).
        withhold_acks(list(getattr(app.consumer, "_unacked_messages", ())))
        halted.append(error)
        first, last = events[0].message, events[-1].message
        log.critical(
            "a batch of %d message(s) (%s:%d@%d .. %s:%d@%d) was not applied (%r): its offsets are "
            "not committed, and it is applied again at the next start",
            len(events),
            first.topic,
            first.partition,
            first.offset,
            last.topic,
            last.partition,
            last.offset,
            error,
        )
        if isinstance(error, SendAbandoned):
            # Faust's stop would wait for an unreachable broker (streams.stop_deadline).
            stop_deadline.arm(str(error))
        elif not isinstance(error, asyncio.CancelledError) and not app.should_stop:
            await app.crash(error)

    @app.agent(telemetry, concurrency=1)  # >1 can commit past an in-flight message (faust issue 606)
    async def process_telemetry(stream: faust.StreamT[bytes]) -> None:
        assert isinstance(stream, faust.Stream)  # StreamT does not declare take_events
        freeze_startup_heap()  # started: imports and app done, the first message not yet read
        async for events in stream.take_events(config.batch_max_messages, within=config.batch_within_s):
            try:
                await process_batch(events)
            except PartitionLost as exc:
                fenced(events, exc)
            except BaseException as exc:
                await not_applied(events, exc)
                raise

    async def apply_control(message: Any) -> None:
        if halted:
            withhold_acks([message])
            return
        owner = ownership.claim([message])
        async with applying:
            raise_if_lost(owner)
            outcome = processor.process_control(
                message.key,
                message.value,
                load_state=table.load,
                source=f"{message.topic}:{message.partition}",
                offset=message.offset,
            )
            if isinstance(outcome, Rejection):
                if outcome.machine_key is not None:
                    table.forget(outcome.machine_key)  # the table keeps the last good state
                await dead_letter(message, outcome, owner)
            elif not outcome.duplicate:
                # Control is co-partitioned with telemetry: the same partition holds the state.
                table.stage(outcome.state, message.partition)
                await publish_then_write(records_of([outcome]), owner)

    @app.agent(control, concurrency=1)
    async def process_control(stream: faust.StreamT[bytes]) -> None:
        """Operator commands (``linepulse baseline reset``), applied like telemetry: exactly once."""
        async for event in stream.events():
            try:
                await apply_control(event.message)
            except PartitionLost as exc:
                fenced([event], exc)
            except BaseException as exc:
                await not_applied([event], exc)
                raise

    lines = LiveLines()
    aggregator = LineAggregator(plant, processor.config_version)
    add_line_view(
        app,
        config.topics,
        config.partitions,
        aggregator,
        lines,
        dead_letter,
        outbox,
        not_applied,
        halted=lambda: bool(halted),
        claim=ownership.claim,
        fenced=fenced,
        ready=lambda: _ready(app),
    )

    def _forget_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        table.clear()
        applier.steps.forget()
        live.forget_all()
        observer.on_rebalance()

    app.on_partitions_revoked.connect(_forget_revoked)

    # Every topic the worker writes (streams.producer_metadata: why), the changelogs by Faust's names.
    written = (
        config.topics.kpis,
        config.topics.alerts,
        config.topics.dead_letters,
        config.topics.line_kpis,
        config.topics.kpis_by_line,
        *(changelog_topic(config.app_id, name) for name in TABLES),
    )

    def _claim_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        ownership.on_assigned()
        pin_topics(producer_client(app), written)

    app.on_partitions_assigned.connect(_claim_assigned)

    not_configured_logged: set[str] = set()

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def _show_recovered_machines() -> None:
        # After a restart or rebalance, machines that send nothing yet are still shown from the
        # table; those no longer in the plant configuration are not (streams.live: why).
        if not _ready(app):
            return
        not_configured = [
            key
            for key in await show_recovered_machines(table, live, applying, lambda: _ready(app))
            if key not in not_configured_logged
        ]
        if not_configured:
            not_configured_logged.update(not_configured)
            log.warning(
                "recovered the state of %d machine(s) not in the plant configuration, not shown or "
                "exported (kept in the machine-state table; docs/operations.md: purging): %s",
                len(not_configured),
                ", ".join(sorted(not_configured)),
            )

    sources = tuple(sorted({topic for agent in app.agents.values() for topic in agent.channel.topics}))
    return LinepulseStream(
        app=app,
        processor=processor,
        live=live,
        lines=lines,
        config=config,
        outbox=outbox,
        sources=sources,
        written=written,
    )
