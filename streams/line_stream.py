"""The line view in the stream: regroup KPI records by line, fold them, publish ``line-kpis``.

``kpis`` is keyed by machine, so a line's machines are spread over partitions. One agent forwards
every complete KPI record to ``kpis-by-line``, keyed ``tenant/line`` (the Kafka way to repartition,
as Faust's ``group_by`` does, but with a topic created up front like the others); a second agent
folds them per line with :class:`~streams.lines.LineAggregator` into the ``line-view`` table, which is
co-partitioned with ``kpis-by-line``. As for machines, a line record is published and acknowledged
before the state that produced it is written, and a re-delivered record changes nothing.

Every send goes through the worker's :class:`~streams.outbox.Outbox`, the line view's changelog
write included: a refused send is retried (the worker says it is stuck) and the event is acked only
after the broker acknowledged all it caused. An event whose sends did not complete (the worker
stops, or a bug) is handed to ``not_applied``, which withholds its ack and halts the worker, as for
telemetry: otherwise Faust would ack it in ``events()``'s ``finally`` and commit a KPI record that
was never regrouped or folded. Every send is fenced on the event's partition
(:mod:`streams.ownership`): a worker that lost it stops sending for the event and withholds its ack,
so its stale line state never lands on the changelog after the line's next owner's.

A rebalance or restart clears the lines shown (:class:`~streams.live.LiveLines`); once the table is
recovered, the lines whose state is on this worker's partitions are shown again from the newest
records their state keeps (:func:`show_recovered_lines`), as machines are (``streams.app``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import faust
import orjson
from pydantic import ValidationError

from streams.decode import Rejection
from streams.lines import LineAggregator, line_key, newest_records
from streams.live import LiveLines
from streams.outbox import Outbox, Outgoing, Owner, PartitionLost, raise_if_lost
from streams.records import KpiRecord, record_bytes
from streams.state_table import remember_partition
from streams.topics import TopicNames, durability_config
from streams.withhold import withhold_acks

__all__ = ["Claim", "DeadLetter", "Fenced", "NotApplied", "add_line_view", "show_recovered_lines"]

log = logging.getLogger(__name__)

# Sends a consumed message whole (key, value and headers) to the dead-letter topic, with the
# rejection's reason in linepulse's headers after its own (streams.dead_letters), fenced on the
# message's partition.
DeadLetter = Callable[[Any, Rejection, Owner], Awaitable[None]]
# Withholds the acks of events that were not applied, and halts the worker (streams.app).
NotApplied = Callable[[Sequence[Any], BaseException], Awaitable[None]]
# Claims the partitions messages came from (streams.ownership), and withholds the acks of events
# whose partition the worker lost before their sends were all acknowledged (the worker goes on).
Claim = Callable[[Sequence[Any]], Owner]
Fenced = Callable[[Sequence[Any], PartitionLost], None]


class LineStates(Protocol):
    """The line-view table as the refill reads it (a Faust table, or a dict in tests)."""

    def keys(self) -> Any: ...

    def get(self, key: bytes) -> bytes | None: ...


def show_recovered_lines(table: LineStates, aggregator: LineAggregator, live: LiveLines) -> None:
    """Show each line whose state the table holds (this worker's partitions once recovered) and
    that was not shown from it since the last rebalance; lines no longer in the plant file are
    not (their state stays in the table, as a removed machine's does)."""
    for key in list(table.keys()):
        if live.was_recovered(key):
            continue
        raw = table.get(key)
        if raw is None:
            continue
        try:
            records = newest_records(orjson.loads(raw))
        except Exception:
            # One state this version cannot read must not keep the others from being shown; the
            # line shows again with its next record (and the fold dead-letters what it cannot fold).
            log.warning("the recovered state of line %r cannot be shown", key, exc_info=True)
            records = []
        live.show_recovered(key, [r for r in records if aggregator.is_configured(r.tenant, r.line)])


def add_line_view(
    app: faust.App,
    topics: TopicNames,
    partitions: int,
    aggregator: LineAggregator,
    live: LiveLines,
    dead_letter: DeadLetter,
    outbox: Outbox,
    not_applied: NotApplied,
    halted: Callable[[], bool],
    claim: Claim,
    fenced: Fenced,
    ready: Callable[[], bool],
) -> None:
    """Declare the two agents and the table on ``app``; a record on ``kpis`` that is not a valid
    KPI record goes to ``dead_letter``. Once ``halted``, no event is applied any more (its ack is
    withheld, :func:`streams.withhold.withhold_acks`): the next start applies it. Recovered lines
    are shown again once ``ready`` (partitions assigned, table recovered)."""
    kpis = app.topic(topics.kpis, key_type=bytes, value_type=bytes)
    by_line = app.topic(topics.kpis_by_line, key_type=bytes, value_type=bytes, partitions=partitions)
    line_kpis = app.topic(topics.line_kpis, key_type=bytes, value_type=bytes)
    table = app.Table(
        "line-view",
        key_type=bytes,
        value_type=bytes,
        partitions=partitions,
        extra_topic_configs=durability_config(app.conf.topic_replication_factor),
    )

    async def valid_record(message: Any, owner: Owner) -> dict[str, Any] | None:
        """The message's KPI record, or None after dead-lettering it: someone else wrote to our
        topics. The bytes are kept, the reason given, and the agent carries on."""
        if message.value is None:
            await dead_letter(message, Rejection("empty", "value", "the message has no value"), owner)
            return None
        try:
            record = KpiRecord.model_validate_json(message.value)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"]) or "value"
            await dead_letter(message, Rejection("invalid_schema", field, error["msg"]), owner)
            return None
        # Only the plant's machines, where the plant file puts them: a line's record must not
        # count a machine of another line, or one nobody configured, whoever wrote it here.
        unplaced = aggregator.placement_rejection(record.tenant, record.machine, record.site, record.line)
        if unplaced is not None:
            await dead_letter(message, unplaced, owner)
            return None
        return record.model_dump(mode="json")

    async def regroup(message: Any, owner: Owner) -> None:
        record = await valid_record(message, owner)
        if record is not None and record["complete"]:
            await outbox.deliver([Outgoing(by_line, line_key(record), message.value)], owner)

    async def fold(message: Any, owner: Owner) -> None:
        record = await valid_record(message, owner)
        if record is None:
            return
        if message.key != line_key(record):
            # The table entry lives on the message's partition: it must be the line's.
            reason = f"key must be the record's tenant/line {line_key(record).decode()!r}"
            await dead_letter(message, Rejection("key_mismatch", "key", reason), owner)
            return
        stored = table.get(message.key)
        try:
            state, line_record = aggregator.apply(None if stored is None else orjson.loads(stored), record)
        except Exception as exc:
            # A record the schema lets through but the line view cannot fold (written by someone
            # else, e.g. with an empty big_losses_s, or a bug): dead-lettered like telemetry's
            # processing errors, or its event would halt the worker again at every start.
            log.exception("folding %s into its line failed; record dead-lettered", message.key)
            rejection = Rejection("processing_error", "value", f"{type(exc).__name__}: {exc}")
            await dead_letter(message, rejection, owner)
            return
        if line_record is not None:
            await outbox.deliver([Outgoing(line_kpis, message.key, record_bytes(line_record))], owner)
            live.update(line_record)
        # What Table.__setitem__ does, with the changelog write acknowledged before the local store
        # (and so before the event's ack): the line view's changelog is where it is recovered from.
        value = orjson.dumps(state)
        changelog = Outgoing(table.changelog_topic, message.key, value, partition=message.partition)
        # Fenced like the machine states: an evicted worker's retry must not land after the line's
        # next owner's state (streams.ownership).
        await outbox.deliver([changelog], owner)
        table.data[message.key] = value
        # So the store drops the line once its partition moves to another worker, as it does for
        # the keys it recovered (streams.state_table.remember_partition).
        remember_partition(table.data, message.key, message.partition)

    async def each_event(
        stream: faust.StreamT[bytes], apply: Callable[[Any, Owner], Awaitable[None]]
    ) -> None:
        async for event in stream.events():
            if halted():  # stopping or crashed: leave it to the next start, uncommitted
                withhold_acks([event.message])
                continue
            owner = claim([event.message])
            try:
                raise_if_lost(owner)  # fetched before a rebalance that has begun
                await apply(event.message, owner)
            except PartitionLost as exc:
                fenced([event], exc)
            except BaseException as exc:
                await not_applied([event], exc)
                raise

    @app.agent(kpis, concurrency=1)
    async def regroup_kpis(stream: faust.StreamT[bytes]) -> None:
        await each_event(stream, regroup)

    @app.agent(by_line, concurrency=1)
    async def fold_lines(stream: faust.StreamT[bytes]) -> None:
        await each_event(stream, fold)

    def _forget_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        live.forget_all()

    app.on_partitions_revoked.connect(_forget_revoked)

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def _show_recovered_lines() -> None:
        # Before the recovery completes the store may still hold lines of revoked partitions.
        if ready():
            show_recovered_lines(table, aggregator, live)
