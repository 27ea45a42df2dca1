"""Changelog records the consumer took from aiokafka and dropped are fetched again.

Faust's ``Consumer.getmany`` takes a batch from aiokafka (which moves aiokafka's position past it)
and drops the whole batch when, by then, the flow is stopped: a rebalance began while the fetch
waited in the consumer thread. For stream partitions Faust then seeks back to the committed offsets,
and a rebalance's recovery seeks them again before they are consumed. A table's changelog partitions
are sought only once, when the recovery starts; records taken and dropped after that seek are never
fetched again.

That is what stalled a worker's table recovery after a rebalance (Faust logs "No event received for
active tp ... since recovery start" every 5 s until the next rebalance; the worker stays not ready).
The loop's fetch, waiting up to a second in the consumer thread, outlived the rebalance: the recovery
sought its changelog partitions and the fetch, woken by their first records, took them from aiokafka
(the partitions still paused, the set it asks for was empty, which aiokafka reads as "all"). Its
result reached the loop before the recovery had resumed the flow, so Faust dropped it, and aiokafka's
position was the changelog's end.

Here the consumer thread notes, with each batch, where aiokafka's positions stood once the batch was
taken; when Faust is about to drop a batch, each changelog partition of it is sought back to its
first record before the next fetch, but only if nothing moved it since (no seek, no new assignment):
a seek after the batch, a recovery's, knows better than the batch. Faust also drops records within a
batch (after a generation change, or of a partition no longer active); a changelog partition's are
then read again by the recovery that follows the generation change, or belong to no recovery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = [
    "RefetchingConsumer",
    "RefetchingThread",
    "Taken",
    "first_offsets",
    "position_when_taken",
    "seek_back_unless_moved",
]

# Per partition: aiokafka's assignment (its identity tells a new assignment apart) and its position
# for the partition, just after a batch was taken.
Taken = dict[Any, tuple[Any, int]]


def first_offsets(batch: Mapping[Any, Sequence[Any]], keep: Callable[[Any], bool]) -> dict[Any, int]:
    """Per kept partition of ``batch`` (records in offset order), its first record's offset."""
    return {tp: records[0].offset for tp, records in batch.items() if records and keep(tp)}


def _assignment(consumer: Any) -> Any:
    subscription = consumer._subscription.subscription
    return None if subscription is None else subscription.assignment


def position_when_taken(consumer: Any, tps: Any) -> Taken:
    """In the consumer thread, just after a batch of ``tps`` was taken: where each stands."""
    assignment = _assignment(consumer)
    if assignment is None:
        return {}
    taken: Taken = {}
    for tp in tps:
        state = assignment.state_value(tp)
        if state is not None and state.has_valid_position:
            taken[tp] = (assignment, state.position)
    return taken


def seek_back_unless_moved(consumer: Any, first: Mapping[Any, int], taken: Taken) -> list[Any]:
    """In the consumer thread: seek each partition back to ``first[tp]`` if it is still where the
    batch left it; the partitions sought back. No await, so no other call of the thread interleaves."""
    assignment = _assignment(consumer)
    sought = []
    for tp, offset in first.items():
        where = taken.get(tp)
        if assignment is None or where is None or where[0] is not assignment:
            continue
        state = assignment.state_value(tp)
        if state is None or not state.has_valid_position or state.position != where[1]:
            continue
        consumer.seek(tp, offset)
        sought.append(tp)
    return sought


class RefetchingThread(faust_aiokafka.AIOKafkaConsumerThread):
    """The consumer thread, noting where each batch left aiokafka's positions."""

    taken: Taken = {}  # noqa: RUF012 (replaced, never mutated)

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,  # noqa: ASYNC109 (Faust's signature)
        max_records: int | None = None,
    ) -> Any:
        records = await super()._fetch_records(
            consumer, active_partitions, timeout=timeout, max_records=max_records
        )
        # No await since the batch was taken: nothing moved the positions in between.
        self.taken = position_when_taken(consumer, records) if records else {}
        return records

    async def seek_back(self, first: Mapping[Any, int], taken: Taken) -> list[Any]:
        """Seek back each partition of ``first`` that ``taken`` says is where its batch left it."""
        consumer = self._ensure_consumer()
        result: list[Any] = await self.call_thread(self._seek_back, consumer, first, taken)
        return result

    async def _seek_back(self, consumer: Any, first: Mapping[Any, int], taken: Taken) -> list[Any]:
        return seek_back_unless_moved(consumer, first, taken)


class RefetchingConsumer(faust_aiokafka.Consumer):
    """Faust's consumer, but a changelog's records in a batch Faust drops are fetched again."""

    _dropped: tuple[dict[Any, int], Taken] | None = None

    async def _wait_next_records(self, timeout: float) -> Any:  # noqa: ASYNC109 (Faust's signature)
        if self._dropped is not None:
            first, taken = self._dropped
            self._dropped = None
            await self._seek_back(first, taken)
        records, active_partitions = await super()._wait_next_records(timeout)
        # Faust's getmany reads the flow right after this returns: stopped, it drops the batch.
        if records and not self.flow_active and not self.should_stop:
            first = first_offsets(records, self._is_changelog_tp)
            thread = self._thread
            if first and isinstance(thread, RefetchingThread):
                self._dropped = (first, thread.taken)
        return records, active_partitions

    async def _seek_back(self, first: Mapping[Any, int], taken: Taken) -> list[Any]:
        thread = self._thread
        if not isinstance(thread, RefetchingThread):
            return []
        try:
            sought = await thread.seek_back(first, taken)
        except Exception as exc:  # the next rebalance's recovery seeks them again
            self.log.warning("Could not fetch changelog records again from %r: %r", first, exc)
            return []
        if sought:
            self.log.info(
                "Changelog records taken while the flow was stopped, dropped: fetching again from %r",
                {tp: first[tp] for tp in sought},
            )
        return sought
