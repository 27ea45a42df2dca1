"""Sending a batch's records until the broker has acknowledged every one: a failed send waits, it is
never skipped.

The agent applies a batch, then sends its dead letters, KPI and alert records, and only after every
one is acknowledged writes the machine states and lets Faust ack (and later commit) the batch's
offsets. A send the broker refuses (a topic whose ``max.message.bytes`` is too small, a missing
topic, an outage) is sent again, with a doubling backoff, until it succeeds: the partitions'
progress waits, as Kafka Streams and Connect stop rather than commit past a record they could not
write. Meanwhile :attr:`Outbox.stuck` is set (``/ready`` says 503 and ``linepulse_send_stuck`` is
1) and every failure is logged and counted. Only when the worker stops does :meth:`Outbox.deliver`
give up, with :class:`SendAbandoned`; the agent then withholds the batch's acks
(:mod:`streams.withhold`), so its offsets are never committed and the next start applies it.

Records already acknowledged are not sent again; the ones that failed are, with the same content
(KPI records and alerts are keyed and revisioned, so a consumer that sees one twice keeps one).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from streams.exceptions import StreamsError

__all__ = ["Outbox", "Outgoing", "SendAbandoned", "SendObserver"]

log = logging.getLogger(__name__)


class SendObserver(Protocol):
    """Told about every failed send (a metric), and when sending works again."""

    def on_send_failed(self, topic: str) -> None: ...

    def on_send_stuck(self, stuck: bool) -> None: ...


class SendAbandoned(StreamsError):
    """The worker stops while a record still could not be sent: its batch must not be acked."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to send: ``topic`` is a Faust topic (its ``send`` returns the delivery future)."""

    topic: Any
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] | None = None  # Kafka header values may be null

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
    ) -> None:
        self._should_stop = should_stop
        self._observer = observer
        self._first_backoff_s = first_backoff_s
        self._max_backoff_s = max_backoff_s
        self.stuck = False

    async def deliver(self, records: Sequence[Outgoing]) -> None:
        """Send ``records`` and wait for every acknowledgement, sending failed ones again until
        they succeed; raises :class:`SendAbandoned` only when the worker stops first."""
        pending = list(records)
        backoff_s = self._first_backoff_s
        attempt = 0
        since = time.monotonic()
        while pending:
            attempt += 1
            failed = await self._send_once(pending)
            if not failed:
                break
            pending = [record for record, _ in failed]
            record, error = failed[0]
            if not self.stuck:
                self.stuck = True
                self._observer.on_send_stuck(True)
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
            if await self._stopped_within(backoff_s):
                raise SendAbandoned(
                    f"the worker stops with {len(pending)} record(s) not sent (first: topic "
                    f"{record.topic_name!r}, {error!r}); their batch is not acknowledged"
                )
            backoff_s = min(backoff_s * 2, self._max_backoff_s)
        if self.stuck:
            self.stuck = False
            self._observer.on_send_stuck(False)
            log.warning("sending works again after %.1f s and %d attempts", time.monotonic() - since, attempt)

    async def _send_once(self, records: Sequence[Outgoing]) -> list[tuple[Outgoing, BaseException]]:
        futures: list[tuple[Outgoing, Any]] = []
        failed: list[tuple[Outgoing, BaseException]] = []
        for record in records:
            try:
                headers = None if record.headers is None else list(record.headers)
                futures.append(
                    (record, await record.topic.send(key=record.key, value=record.value, headers=headers))
                )
            except Exception as exc:  # refused before it left (too large for the producer, ...)
                failed.append((record, exc))
        for record, future in futures:
            try:
                await future
            except Exception as exc:  # refused by the broker
                failed.append((record, exc))
        for record, _ in failed:
            self._observer.on_send_failed(record.topic_name)
        return failed

    async def _stopped_within(self, seconds: float) -> bool:
        """Sleep ``seconds``, waking early when the worker stops; True if it stops."""
        deadline = time.monotonic() + seconds
        while not self._should_stop():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(left, 0.2))
        return True
