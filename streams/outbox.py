"""Sending a batch's records until the broker has acknowledged every one: a failed send waits, it is
never skipped.

The agent applies a batch, then sends its dead letters, KPI and alert records, then (once every one
is acknowledged) the changelog records of the machine states it changed, and only after those are
acknowledged too lets Faust ack (and later commit) the batch's offsets. A send the broker refuses
(a topic whose ``max.message.bytes`` is too small, a missing topic) is sent again, with a doubling
backoff, until it succeeds: the partitions' progress waits, as Kafka Streams and Connect stop rather
than commit past a record they could not write. A send the broker does not answer (an outage) is
not sent again while the producer still retries it, but after ``stuck_after_s`` it counts as stuck
too. While any caller's send is stuck, :attr:`Outbox.stuck` is set (``/ready`` says 503 and
``linepulse_send_stuck`` is 1) and every failure is logged and counted. Only when the worker stops
does :meth:`Outbox.deliver` give up, with :class:`SendAbandoned`, at once even while a send is
outstanding; the agent then withholds the batch's acks (:mod:`streams.withhold`), so its offsets
are never committed and the next start applies it.

Records already acknowledged are not sent again; the ones that failed are, with the same content
(KPI records and alerts are keyed and revisioned, changelog records carry a whole state, so a
consumer that sees one twice keeps one).

Fencing: a batch's records are sent only while the worker still owns the partitions the batch came
from. The caller passes the batch's :class:`Owner` (a :class:`streams.ownership.Claim`); before
each attempt, and while it waits for an acknowledgement or a backoff, :meth:`Outbox.deliver` asks
it. Once a rebalance has revoked a partition of the batch (even one that gave it back), or it is no
longer assigned, the outbox stops with :class:`PartitionLost`, sending nothing more: the partition's
next owner applies the batch again from the committed offset and writes its own states, which a
late retry from here would otherwise overwrite with a stale one on the changelog. The caller
withholds the batch's acks and goes on with the partitions it still owns. While the owner cannot
be confirmed (no heartbeat acknowledged for most of a session timeout: the process was frozen,
perhaps evicted), nothing is sent until it is, or until the rebalance that follows says it is lost.
Records acknowledged before stay acknowledged (they are re-sent, identical, by the next owner). A
send already handed to the producer when the partition is lost may still land: only Kafka
transactions fence that, at the broker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from streams.exceptions import StreamsError

__all__ = ["Outbox", "Outgoing", "Owner", "PartitionLost", "SendAbandoned", "SendObserver", "raise_if_lost"]

log = logging.getLogger(__name__)

# How often a caller waiting for acknowledgements looks whether the worker stops.
_POLL_S = 0.2


class SendObserver(Protocol):
    """Told about every failed send (a metric), and when sending works again."""

    def on_send_failed(self, topic: str) -> None: ...

    def on_send_stuck(self, stuck: bool) -> None: ...


class SendAbandoned(StreamsError):
    """The worker stops while a record still could not be sent: its batch must not be acked."""


class PartitionLost(StreamsError):
    """The worker no longer owns a partition the batch came from: its records are not sent (any
    more), and its acks are withheld; ``str()`` names the topic-partitions. The worker goes on."""


def raise_if_lost(owner: Owner | None, records: Sequence[Outgoing] | None = None) -> None:
    """Raise :class:`PartitionLost` when ``owner``'s partitions are lost: before applying a batch
    fetched before a rebalance that has begun since (``records`` None: not this worker's to apply any
    more), or before sending ``records`` (their batch is then not acknowledged)."""
    reason = None if owner is None else owner.lost()
    if reason is None:
        return
    if records is None:
        raise PartitionLost(f"{reason}; the batch is not applied here")
    raise PartitionLost(
        f"{reason}; {len(records)} record(s) not sent (first: topic {records[0].topic_name!r}), "
        "their batch is not acknowledged: the partition's owner applies it again from the "
        "committed offset"
    )


class Owner(Protocol):
    """Whether the partitions a batch came from are still this worker's (streams.ownership.Claim)."""

    def lost(self) -> str | None:
        """Why they are not (for good), naming them; None while they are."""

    def confirmed(self) -> bool:
        """False while ownership cannot be vouched for (no recent heartbeat): send nothing yet."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to send: ``topic`` is a Faust topic (its ``send`` returns the delivery future);
    ``partition`` None lets the producer's partitioner choose by key."""

    topic: Any
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] | None = None  # Kafka header values may be null
    partition: int | None = None

    @property
    def topic_name(self) -> str:
        return str(self.topic.get_topic_name())


class Outbox:
    def __init__(
        self,
        should_stop: Callable[[], bool],
        observer: SendObserver,
        first_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        stuck_after_s: float = 5.0,
    ) -> None:
        self._should_stop = should_stop
        self._observer = observer
        self._first_backoff_s = first_backoff_s
        self._max_backoff_s = max_backoff_s
        self._stuck_after_s = stuck_after_s
        # Callers (concurrent deliver calls: telemetry, control, line-view agents) stuck right now:
        # one caller's success must not hide another's stuck send.
        self._stuck_callers = 0

    @property
    def stuck(self) -> bool:
        """True while any caller's send is refused or has gone unanswered for ``stuck_after_s``."""
        return self._stuck_callers > 0

    async def deliver(self, records: Sequence[Outgoing], owner: Owner | None = None) -> None:
        """Send ``records`` and wait for every acknowledgement, sending failed ones again until
        they succeed; raises :class:`SendAbandoned` only when the worker stops first, and
        :class:`PartitionLost` once ``owner`` (the batch's source partitions) is lost."""
        caller = _Caller(self)
        try:
            await self._deliver(records, caller, owner)
        finally:
            caller.unstick()

    async def _deliver(self, records: Sequence[Outgoing], caller: _Caller, owner: Owner | None) -> None:
        pending = list(records)
        backoff_s = self._first_backoff_s
        attempt = 0
        since = time.monotonic()
        while pending:
            attempt += 1
            if owner is not None:
                await self._owned(owner, pending, caller)
            failed = await self._attempt(pending, caller, owner)
            if not failed:
                break
            pending = [record for record, _ in failed]
            record, error = failed[0]
            caller.stick()
            log.error(
                "%d record(s) could not be sent (first: topic %r, %r); attempt %d, retrying in %.1f s. "
                "The batch's offsets are not committed until every record is acknowledged: "
                "fix the topic or the broker and the worker carries on.",
                len(failed),
                record.topic_name,
                error,
                attempt,
                backoff_s,
            )
            if await self._stopped_within(backoff_s, owner, pending):
                raise SendAbandoned(
                    f"the worker stops with {len(pending)} record(s) not sent (first: topic "
                    f"{record.topic_name!r}, {error!r}); their batch is not acknowledged"
                )
            backoff_s = min(backoff_s * 2, self._max_backoff_s)
        if caller.is_stuck:
            log.warning("sending works again after %.1f s and %d attempts", time.monotonic() - since, attempt)

    async def _attempt(
        self, records: Sequence[Outgoing], caller: _Caller, owner: Owner | None
    ) -> list[tuple[Outgoing, BaseException]]:
        """One send of ``records``, watched: stuck once it is outstanding ``stuck_after_s`` (the
        producer retries an unanswered request for ``producer_request_timeout``, 20 minutes by
        default), abandoned as soon as the worker stops or ``owner`` is lost (so a rebalance
        waiting for the batch goes on: the producer may still deliver what it holds)."""
        started = time.monotonic()
        task = asyncio.ensure_future(self._send_once(records))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=_POLL_S)
                if done:
                    return task.result()
                if self._should_stop():
                    raise SendAbandoned(
                        f"the worker stops with {len(records)} record(s) unacknowledged after "
                        f"{time.monotonic() - started:.1f} s (first: topic {records[0].topic_name!r}); "
                        "their batch is not acknowledged"
                    )
                raise_if_lost(owner, records)
                if not caller.is_stuck and time.monotonic() - started >= self._stuck_after_s:
                    caller.stick()
                    log.error(
                        "%d record(s) (first: topic %r) unacknowledged after %.0f s: is the broker "
                        "reachable? The batch's offsets are not committed until every record is.",
                        len(records),
                        records[0].topic_name,
                        self._stuck_after_s,
                    )
        finally:
            # Abandoned (stopping) or cancelled: stop waiting. The delivery futures themselves are
            # shielded, so the producer's own bookkeeping of them is untouched.
            task.cancel()

    async def _send_once(self, records: Sequence[Outgoing]) -> list[tuple[Outgoing, BaseException]]:
        futures: list[tuple[Outgoing, Any]] = []
        failed: list[tuple[Outgoing, BaseException]] = []
        for record in records:
            try:
                headers = None if record.headers is None else list(record.headers)
                future = await record.topic.send(
                    key=record.key, value=record.value, partition=record.partition, headers=headers
                )
                futures.append((record, future))
            except Exception as exc:  # refused before it left (too large for the producer, ...)
                failed.append((record, exc))
        for record, future in futures:
            try:
                await asyncio.shield(future)
            except Exception as exc:  # refused by the broker
                failed.append((record, exc))
        for record, _ in failed:
            self._observer.on_send_failed(record.topic_name)
        return failed

    async def _stopped_within(self, seconds: float, owner: Owner | None, records: Sequence[Outgoing]) -> bool:
        """Sleep ``seconds``, waking early when the worker stops (True) or ``owner`` is lost
        (:class:`PartitionLost`)."""
        deadline = time.monotonic() + seconds
        while not self._should_stop():
            raise_if_lost(owner, records)
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(left, _POLL_S))
        return True

    async def _owned(self, owner: Owner, records: Sequence[Outgoing], caller: _Caller) -> None:
        """Return once ``owner`` is confirmed; :class:`PartitionLost` once it is lost,
        :class:`SendAbandoned` if the worker stops first. Waiting longer than ``stuck_after_s``
        is stuck, as an unanswered send is."""
        started = time.monotonic()
        logged = False
        while True:
            raise_if_lost(owner, records)
            if owner.confirmed():
                return
            if self._should_stop():
                raise SendAbandoned(
                    f"the worker stops with {len(records)} record(s) held while its partitions were "
                    f"unconfirmed (first: topic {records[0].topic_name!r}); their batch is not acknowledged"
                )
            waited = time.monotonic() - started
            if not logged:
                logged = True
                log.warning(
                    "%d record(s) (first: topic %r) held: no heartbeat acknowledged lately, so this "
                    "worker may have lost their partitions (a frozen process is evicted from the group); "
                    "sent once a heartbeat is acknowledged, dropped if a rebalance revoked them",
                    len(records),
                    records[0].topic_name,
                )
            if waited >= self._stuck_after_s:
                caller.stick()
            await asyncio.sleep(_POLL_S)

    def _stick(self) -> None:
        self._stuck_callers += 1
        if self._stuck_callers == 1:
            self._observer.on_send_stuck(True)

    def _unstick(self) -> None:
        self._stuck_callers -= 1
        if self._stuck_callers == 0:
            self._observer.on_send_stuck(False)


class _Caller:
    """One :meth:`Outbox.deliver` call's share of :attr:`Outbox.stuck`: counted once while stuck."""

    __slots__ = ("_outbox", "is_stuck")

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self.is_stuck = False

    def stick(self) -> None:
        if not self.is_stuck:
            self.is_stuck = True
            self._outbox._stick()

    def unstick(self) -> None:
        if self.is_stuck:
            self.is_stuck = False
            self._outbox._unstick()
