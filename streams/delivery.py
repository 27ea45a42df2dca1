"""The consumer hands each fetched message to its stream without Faust's race of four tasks per message.

Faust's ``Consumer._drain_messages`` delivers every fetched message with
``await self.wait_first(callback(message), self.suspend_flow.wait())``, so that a delivery stuck on
a full stream buffer gives way when a rebalance suspends the flow. mode's ``wait_first`` wraps the
delivery, the suspension and the service's stopped and crashed events in four tasks, waits for the
first to finish and cancels the other three: ~33 µs of CPU per message (a third of what an empty
Faust agent costs per message on the end-to-end benchmark), while a delivery almost never waits:
the buffer has room and the conductor's lock is free.

Here the delivery coroutine takes its first step directly. If it finishes there, nothing waited,
so nothing could have raced it. If it waits, the rest of it runs as a task raced against the flow
suspension, exactly as Faust does. Each step runs in a copy of the caller's context, as a task's
would. The rest of the loop is Faust's, copied (faust-streaming is pinned in constraints.txt;
tests/unit/test_delivery.py fails when the original changes), but for the rebalance below.

While the consumer rebalances, stream records are held back, not delivered. When a rebalance's
recovery is done, Faust resumes the stream partitions, seeks them to their committed offsets (which
also resets the loop's read offsets) and only then clears every stream buffer. A record delivered
in between is lost from its buffer; the next record of the batch in hand is then past the reset
read offset, so the loop records the lost ones as a gap, which Faust commits as if processed, and
drops their second fetch as already read. Faust's delivery has the same race, but its task switch
per message lets the agent keep the buffer nearly empty; the direct delivery fills it with
hundreds of messages per loop turn, and a worker restarted with a backlog lost 20-40 % of them,
committed and never applied. Held back, they are fetched again from the first of them once the
rebalance has ended (Faust clears the buffers before it ends the rebalance). Changelog records,
which the recovery reads through this loop, are delivered as Faust delivers them.

Python 3.11 only (:data:`SUPPORTED`): the first step runs as the drain task, so
``asyncio.current_task()`` there is the drain task. From 3.12 ``asyncio.wait_for`` is built on
``asyncio.timeout``, which cancels the current task when it expires; Faust's producer buffer calls
it in a delivery's first step, and a timeout would cancel the drain loop itself. On other versions
the worker keeps Faust's delivery.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, Final, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode import Service

__all__ = ["FAUST_DRAIN_SHA256", "SUPPORTED", "DirectDeliveryConsumer", "HeldBack", "deliver", "held_back"]

# sha256 of inspect.getsource(faust.transport.consumer.Consumer._drain_messages), the loop copied below.
FAUST_DRAIN_SHA256: Final = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"

Delivery = Callable[[Any], Awaitable[Any]]

SUPPORTED: Final = sys.version_info[:2] == (3, 11)  # see the module docstring


@types.coroutine
def _finish(
    coro: Coroutine[Any, Any, Any], waits_on: Any, context: contextvars.Context
) -> Generator[Any, Any, Any]:
    """The rest of ``coro``, whose first step yielded ``waits_on``: the task running this waits on
    what the coroutine waits on, and passes results, errors and cancellation through to it."""
    while True:
        try:
            value = yield waits_on
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # thrown in by the task: cancellation, a failed future
            step: Callable[[Any], Any] = coro.throw
            value = exc
        else:
            step = coro.send
        try:
            waits_on = context.run(step, value)
        except StopIteration as stop:
            return stop.value


async def _rest(coro: Coroutine[Any, Any, Any], waits_on: Any, context: contextvars.Context) -> Any:
    return await _finish(coro, waits_on, context)


async def deliver(
    service: Service,
    suspend_flow: asyncio.Event,
    callback: Delivery,
    message: Any,
    *,
    rebalancing: bool = False,
) -> None:
    """``await service.wait_first(callback(message), suspend_flow.wait())``, without its tasks when
    the delivery does not wait; while ``rebalancing`` (a changelog's records), always as Faust does."""
    pending = callback(message)
    if rebalancing or suspend_flow.is_set() or not isinstance(pending, Coroutine):
        await service.wait_first(pending, suspend_flow.wait())
        return
    context = contextvars.copy_context()
    try:
        waits_on = context.run(pending.send, None)
    except StopIteration:
        return  # delivered in its first step
    rest = asyncio.ensure_future(_rest(pending, waits_on, context))
    rest.add_done_callback(lambda _: _cancel_unstarted(pending, context))
    await service.wait_first(rest, suspend_flow.wait())


def _cancel_unstarted(pending: Coroutine[Any, Any, Any], context: contextvars.Context) -> None:
    """A delivery task cancelled before its first step (a task sweep at shutdown) never told the
    suspended callback: cancel it as its own task would have been, so its ``finally`` and lock
    waiters unwind now. A callback that finished or was cancelled through the task is untouched."""
    # Native coroutines only: a compiled one (Faust's Cython conductor) shows no frame; left as is.
    if getattr(pending, "cr_frame", None) is None or getattr(pending, "cr_running", True):
        return
    try:
        context.run(pending.throw, asyncio.CancelledError())
    except BaseException:
        return
    pending.close()  # it swallowed the cancellation and waits again: nothing will resume it


class HeldBack:
    """Stream records fetched while the consumer rebalances, not delivered: per partition, the
    first offset to fetch again once the rebalance has ended."""

    __slots__ = ("_first",)

    def __init__(self) -> None:
        self._first: dict[Any, int] = {}

    def __bool__(self) -> bool:
        return bool(self._first)

    def __contains__(self, tp: object) -> bool:
        return tp in self._first

    def hold(self, tp: Any, offset: int) -> None:
        first = self._first.get(tp)
        if first is None or offset < first:
            self._first[tp] = offset

    def take(self) -> dict[Any, int]:
        """The positions to fetch again from, forgotten here."""
        first, self._first = self._first, {}
        return first


def held_back(rebalancing: bool, is_changelog: bool, tp: Any, held: HeldBack) -> bool:
    """Whether a fetched record is held back rather than delivered: any but a changelog's while the
    consumer rebalances (its recovery reads the changelogs through this loop, then seeks the stream
    partitions and clears the stream buffers), and, after, any of a partition that has records
    held back, until it is fetched again from the first of them."""
    return (rebalancing and not is_changelog) or tp in held


class DirectDeliveryConsumer(faust_aiokafka.Consumer):
    async def _fetch_again(self, held: HeldBack) -> None:  # pragma: no cover
        """Fetch each assigned partition's held-back records again: seek back to the first of them
        unless the position already lies at or before it (a seek to the committed offset after
        they were fetched, or a reset on assignment): never forward, past records the rebalance
        cleared from the stream buffers. A partition no longer assigned is its next owner's, from
        the committed offset, which cannot lie past records never delivered. One that fails stays
        held back, so no later record of it is delivered past them, and is tried again."""
        assigned = self.assignment()
        for tp, first in held.take().items():
            if tp not in assigned:
                continue
            try:
                position = await self.position(tp)
                if self.app.rebalancing:
                    # A new rebalance began while the position was read: its seek to the committed
                    # offset may already lie before `first`, and seeking on would skip past it.
                    held.hold(tp, first)
                    continue
                if position is not None and position > first:
                    await self.seek(tp, first)
            except Exception as exc:
                self.log.warning("Could not fetch %r again from %r: %r", tp, first, exc)
                held.hold(tp, first)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover
        # Faust's loop (faust.transport.consumer.Consumer._drain_messages), but for the delivery
        # and the records held back during a rebalance (see the module docstring).
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        flag_consumer_fetching = CONSUMER_FETCHING
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        app = self.app
        held = HeldBack()

        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                if held and not app.rebalancing:
                    await self._fetch_again(held)
                set_flag(flag_consumer_fetching)
                ait = getmany(timeout=1.0)

                # Sleeping because sometimes getmany is called in a loop
                # never releasing to the event loop
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0

                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            rebalancing = app.rebalancing
                            if (rebalancing or held) and held_back(
                                rebalancing, tp.topic in app.tables.changelog_topics, tp, held
                            ):
                                held.hold(tp, offset)
                                continue
                            gap = offset - (r_offset or 0)
                            # We have a gap in income messages
                            if gap > 1 and r_offset:
                                acks_enabled = acks_enabled_for(message.topic)
                                if acks_enabled:
                                    await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            await deliver(self, self.suspend_flow, callback, message, rebalancing=rebalancing)
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev(
                                "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                                offset,
                                message.key,
                                message.value,
                            )
                    unset_flag(flag_consumer_fetching)

        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(flag_consumer_fetching)
