"""The outbox's own bookkeeping: who is stuck, and how soon a stopping worker gives up.

The topics here are stand-ins whose delivery futures the test settles: what is tested is the
outbox's accounting across concurrent callers, not Kafka (refused and unanswered sends against real
brokers: tests/integration/test_refused_sends.py, test_state_changelog.py, test_broker_outage.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import EllipsisType

import pytest

from streams.outbox import Outbox, Outgoing, PartitionLost, SendAbandoned


class Observer:
    def __init__(self) -> None:
        self.stuck: list[bool] = []
        self.failed: list[str] = []

    def on_send_failed(self, topic: str) -> None:
        self.failed.append(topic)

    def on_send_stuck(self, stuck: bool) -> None:
        self.stuck.append(stuck)


class Topic:
    """``send`` returns a delivery future settled by ``outcome()``: None acknowledges, an exception
    refuses, ``...`` leaves it unanswered."""

    def __init__(self, name: str, outcome: Callable[[], BaseException | EllipsisType | None]) -> None:
        self.name = name
        self.outcome = outcome
        self.sent = 0
        self.retried = asyncio.Event()  # sent a third time

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, **_: object) -> asyncio.Future[None]:
        self.sent += 1
        if self.sent >= 3:
            self.retried.set()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        outcome = self.outcome()
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        elif outcome is None:
            future.set_result(None)
        return future


def test_one_caller_succeeding_does_not_clear_another_callers_stuck_send() -> None:
    async def scenario() -> None:
        observer = Observer()
        outbox = Outbox(lambda: False, observer, first_backoff_s=0.01, max_backoff_s=0.02)
        refusing = True
        stuck_topic = Topic("kpis", lambda: RuntimeError("refused") if refusing else None)
        flaky = iter([RuntimeError("refused once")])
        other_topic = Topic("line-kpis", lambda: next(flaky, None))

        stuck_caller = asyncio.ensure_future(outbox.deliver([Outgoing(stuck_topic, b"k", b"v")]))
        await stuck_topic.retried.wait()
        assert outbox.stuck
        await outbox.deliver([Outgoing(other_topic, b"k", b"v")])  # stuck once, then acknowledged
        assert other_topic.sent == 2
        assert outbox.stuck, "the first caller is still retrying"
        assert observer.stuck == [True]

        refusing = False
        await stuck_caller
        assert not outbox.stuck
        assert observer.stuck == [True, False]
        assert observer.failed.count("line-kpis") == 1 and observer.failed.count("kpis") >= 3

    asyncio.run(scenario())


def test_an_unanswered_send_makes_the_outbox_stuck_and_a_stop_abandons_it_at_once() -> None:
    async def scenario() -> None:
        observer = Observer()
        stopping = False
        outbox = Outbox(lambda: stopping, observer, stuck_after_s=0.3)
        silent = Topic("machine-state-changelog", lambda: ...)
        caller = asyncio.ensure_future(outbox.deliver([Outgoing(silent, b"k", b"v", partition=2)]))
        await asyncio.sleep(0.1)
        assert not outbox.stuck  # a slow acknowledgement is not an outage yet
        await asyncio.sleep(0.4)
        assert outbox.stuck and observer.stuck == [True]
        assert silent.sent == 1  # not sent again while the producer may still deliver it

        stopping = True
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(SendAbandoned, match="unacknowledged"):
            await caller
        assert loop.time() - started < 1.0
        assert not outbox.stuck and observer.stuck == [True, False]
        assert observer.failed == []

    asyncio.run(scenario())


class Owner:
    """A batch's claim on its partitions (streams.ownership.Claim), set by the test."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.is_confirmed = True

    def lost(self) -> str | None:
        return self.reason

    def confirmed(self) -> bool:
        return self.is_confirmed


def test_a_retrying_send_stops_once_its_partition_is_lost_and_sends_nothing_more() -> None:
    async def scenario() -> None:
        observer = Observer()
        outbox = Outbox(lambda: False, observer, first_backoff_s=0.3, max_backoff_s=0.3)
        refused = Topic("machine-state-changelog", lambda: RuntimeError("refused"))
        owner = Owner()
        caller = asyncio.ensure_future(outbox.deliver([Outgoing(refused, b"k", b"v", partition=1)], owner))
        await refused.retried.wait()
        owner.reason = "telemetry:1: a rebalance revoked them after the batch was applied"
        sent = refused.sent
        with pytest.raises(PartitionLost, match=r"telemetry:1: a rebalance .* 1 record\(s\) not sent"):
            await asyncio.wait_for(caller, 1.0)  # in the backoff: no need to wait for its end
        assert refused.sent == sent
        assert not outbox.stuck

    asyncio.run(scenario())


def test_nothing_is_sent_while_the_owner_is_unconfirmed() -> None:
    async def scenario() -> None:
        observer = Observer()
        outbox = Outbox(lambda: False, observer, stuck_after_s=0.3)
        topic = Topic("kpis", lambda: None)
        owner = Owner()
        owner.is_confirmed = False
        caller = asyncio.ensure_future(outbox.deliver([Outgoing(topic, b"k", b"v")], owner))
        await asyncio.sleep(0.5)
        assert topic.sent == 0
        assert outbox.stuck, "held longer than stuck_after_s"
        owner.is_confirmed = True  # a heartbeat was acknowledged: still the owner
        await caller
        assert topic.sent == 1 and not outbox.stuck

        owner.is_confirmed = False
        caller = asyncio.ensure_future(outbox.deliver([Outgoing(topic, b"k", b"v")], owner))
        await asyncio.sleep(0.3)
        owner.reason = "telemetry:0: a rebalance revoked them after the batch was applied"
        with pytest.raises(PartitionLost):
            await caller
        assert topic.sent == 1

    asyncio.run(scenario())
