"""The consumer's delivery without Faust's four tasks per message keeps Faust's semantics.

Deliveries here are real coroutines on a real event loop and a real mode Service; the worker's
integration tests (bad input, kill -9, frames, late events) run it against Apache Kafka and Tansu.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import inspect
import sys
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from mode import Service

from streams import delivery, fetch_wait
from streams.delivery import FAUST_DRAIN_SHA256, DirectDeliveryConsumer, HeldBack, deliver, held_back
from streams.fetch_wait import app_with_fetch_wait

_seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="caller")


class _Counting(Service):
    """A mode Service that counts the wait_first races it runs (Faust's per-message path)."""

    races = 0

    async def wait_first(self, *coros: Any, timeout: Any = None) -> Any:  # noqa: ASYNC109 (mode's signature)
        self.races += 1
        return await super().wait_first(*coros, timeout=timeout)


def test_faust_drain_loop_is_the_one_copied() -> None:
    """streams.delivery copies Faust's loop: when faust changes it, review the copy."""
    source = inspect.getsource(Consumer._drain_messages)
    assert hashlib.sha256(source.encode()).hexdigest() == FAUST_DRAIN_SHA256
    assert "await self.wait_first(\n" in source and "callback(message), self.suspend_flow.wait()" in source


def test_the_worker_consumer_delivers_directly(tmp_path: Any) -> None:
    app = app_with_fetch_wait(0.05, "delivery-test", broker="kafka://127.0.0.1:1", datadir=str(tmp_path),
                              direct_delivery=True)  # fmt: skip
    assert isinstance(app.consumer, DirectDeliveryConsumer)
    plain = app_with_fetch_wait(0.05, "delivery-plain", broker="kafka://127.0.0.1:1", datadir=str(tmp_path))
    assert not isinstance(plain.consumer, DirectDeliveryConsumer)


def test_a_delivery_that_does_not_wait_runs_no_race() -> None:
    delivered: list[int] = []

    async def callback(message: int) -> None:
        _seen.set("callback")  # a task's context is a copy: the caller must not see this
        delivered.append(message)

    async def run() -> int:
        service = _Counting()
        for message in range(3):
            await deliver(service, asyncio.Event(), callback, message)
        assert _seen.get() == "caller"
        return service.races

    assert asyncio.run(run()) == 0
    assert delivered == [0, 1, 2]


def test_a_delivery_that_waits_finishes_in_a_race_with_the_suspension() -> None:
    async def run() -> tuple[list[str], int]:
        service, room = _Counting(), asyncio.get_running_loop().create_future()
        steps: list[str] = []

        async def callback(message: str) -> str:
            _seen.set("callback")
            steps.append(f"{message} waits")
            steps.append(f"{message} got {await room}, saw {_seen.get()}")
            await asyncio.sleep(0)  # a bare yield after the first wait
            return message

        task = asyncio.ensure_future(deliver(service, asyncio.Event(), callback, "m"))
        await asyncio.sleep(0.01)
        assert not task.done() and steps == ["m waits"]
        room.set_result("room")
        await asyncio.wait_for(task, 1)
        assert _seen.get() == "caller"
        return steps, service.races

    assert asyncio.run(run()) == (["m waits", "m got room, saw callback"], 1)


def test_a_waiting_delivery_gives_way_when_the_flow_is_suspended() -> None:
    """As in Faust: a rebalance suspends the flow, the stuck delivery is cancelled, draining goes on."""

    async def run() -> bool:
        service, suspend = _Counting(), asyncio.Event()
        cancelled = asyncio.get_running_loop().create_future()

        async def callback(message: str) -> None:
            try:
                await asyncio.get_running_loop().create_future()  # a full buffer, never emptied
            except asyncio.CancelledError:
                cancelled.set_result(True)
                raise

        task = asyncio.ensure_future(deliver(service, suspend, callback, "m"))
        await asyncio.sleep(0.01)
        assert not task.done()
        suspend.set()
        await asyncio.wait_for(task, 1)
        return bool(await asyncio.wait_for(cancelled, 1))

    assert asyncio.run(run())


@pytest.mark.parametrize("waits", [False, True])
def test_a_failing_delivery_raises_to_the_drain_loop(waits: bool) -> None:
    async def callback(message: str) -> None:
        if waits:
            await asyncio.sleep(0.001)
        raise ValueError(f"cannot deliver {message}")

    async def run() -> None:
        await deliver(_Counting(), asyncio.Event(), callback, "m")

    with pytest.raises(ValueError, match="cannot deliver m"):
        asyncio.run(run())


def test_a_suspended_flow_takes_faust_path() -> None:
    async def run() -> int:
        service, suspend = _Counting(), asyncio.Event()
        suspend.set()

        async def callback(message: str) -> None:
            return None

        await deliver(service, suspend, callback, "m")
        return service.races

    assert asyncio.run(run()) == 1


def test_a_delivery_cancelled_before_its_first_step_still_cancels_the_callback() -> None:
    """A task sweep at shutdown can cancel the delivery's task before it ran: the suspended callback
    must still unwind (it once kept a lock waiter, and the next acquirer deadlocked)."""

    async def run() -> list[str]:
        lock, log = asyncio.Lock(), []
        await lock.acquire()
        me = asyncio.current_task()

        async def callback(message: str) -> None:
            try:
                async with lock:
                    log.append(f"{message} got the lock")
            except asyncio.CancelledError:
                log.append(f"{message} cancelled")
                raise

        def sweep() -> None:
            for task in asyncio.all_tasks():
                if task is not me:
                    task.cancel()

        async def drain() -> None:
            asyncio.get_running_loop().call_soon(sweep)  # runs before the delivery task's first step
            await deliver(Service(), asyncio.Event(), callback, "m1")

        drained = asyncio.ensure_future(drain())
        await asyncio.sleep(0.01)
        assert drained.cancelled()
        lock.release()
        await asyncio.wait_for(callback("m2"), 1.0)
        return log

    assert asyncio.run(run()) == ["m1 cancelled", "m2 got the lock"]


def test_direct_delivery_only_where_its_first_step_may_run_as_the_drain_task(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From Python 3.12 asyncio.wait_for cancels the current task on timeout: in a first step run
    as the drain task, Faust's producer-buffer wait would cancel the drain loop. There the worker
    keeps Faust's delivery."""
    assert (sys.version_info[:2] == (3, 11)) == delivery.SUPPORTED
    monkeypatch.setattr(fetch_wait, "DELIVERY_SUPPORTED", False)
    app = app_with_fetch_wait(0.05, "delivery-312", broker="kafka://127.0.0.1:1", datadir=str(tmp_path),
                              direct_delivery=True)  # fmt: skip
    assert not isinstance(app.consumer, DirectDeliveryConsumer)


def test_while_rebalancing_a_delivery_takes_faust_path() -> None:
    """A changelog record delivered during a rebalance: exactly as Faust delivers it."""

    async def run() -> int:
        service = _Counting()

        async def callback(message: str) -> None:
            return None

        await deliver(service, asyncio.Event(), callback, "m", rebalancing=True)
        return service.races

    assert asyncio.run(run()) == 1


def test_stream_records_are_held_back_while_rebalancing_changelog_records_are_not() -> None:
    """Faust's recovery seeks the stream partitions to their committed offsets, then clears the
    streams' buffers: a record delivered in between was lost, and the next one of its partition made
    Faust count the lost ones as a gap (committable). Held back, they are fetched again."""
    held = HeldBack()
    assert held_back(rebalancing=True, is_changelog=False, tp="telemetry/0", held=held)
    assert not held_back(rebalancing=True, is_changelog=True, tp="state-changelog/0", held=held)
    assert not held_back(rebalancing=False, is_changelog=False, tp="telemetry/0", held=held)


def test_a_partition_with_records_held_back_is_fetched_again_from_the_first() -> None:
    held = HeldBack()
    assert not held
    for offset in (40, 41, 27, 28):  # a seek in between: the fetch restarted lower
        held.hold("telemetry/0", offset)
    held.hold("telemetry/1", 7)
    assert held and "telemetry/0" in held
    # After the rebalance, the rest of its records in hand are held back too, until fetched again.
    assert held_back(rebalancing=False, is_changelog=False, tp="telemetry/0", held=held)
    assert not held_back(rebalancing=False, is_changelog=False, tp="telemetry/2", held=held)
    assert held.take() == {"telemetry/0": 27, "telemetry/1": 7}
    assert not held and "telemetry/0" not in held
    assert not held_back(rebalancing=False, is_changelog=False, tp="telemetry/0", held=held)
