"""The fencing decision (streams.ownership): when a batch's claim on its partitions is lost, and when
it cannot be vouched for. The app here is a stand-in for the three things read from Faust's; the
decision against a real consumer group and broker: tests/integration/test_fencing.py."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from aiokafka.consumer.group_coordinator import GroupCoordinator
from faust.types.tuples import TP

from streams.ownership import AIOKAFKA_HEARTBEAT_SHA256, Ownership


def test_the_wrapped_heartbeat_is_the_one_relied_upon() -> None:
    source = inspect.getsource(GroupCoordinator._do_heartbeat)
    assert hashlib.sha256(source.encode()).hexdigest() == AIOKAFKA_HEARTBEAT_SHA256


@dataclass
class App:
    assigned: set[tuple[str, int]] = field(default_factory=lambda: {("t", 0), ("t", 1)})
    rebalancing: bool = False
    rebalancing_count: int = 3

    @property
    def consumer(self) -> Any:
        return SimpleNamespace(assignment=lambda: set(self.assigned))

    def rebalance(self) -> None:  # what Faust's on_rebalance_start does first
        self.rebalancing = True
        self.rebalancing_count += 1


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _message(partition: int) -> Any:
    return SimpleNamespace(tp=TP("t", partition))


def test_a_claim_is_lost_once_a_rebalance_begins_even_if_the_partition_comes_back() -> None:
    app = App()
    claim = Ownership(app, 6.0).claim([_message(0), _message(1)])
    assert claim.lost() is None
    app.rebalance()
    assert claim.lost() == "t:0, t:1: a rebalance revoked them after the batch was applied"
    app.rebalancing = False  # assigned the same partitions again
    assert claim.lost() is not None


def test_a_batch_claimed_during_a_rebalance_is_lost_at_once() -> None:
    app = App()
    app.rebalance()
    claim = Ownership(app, 6.0).claim([_message(1)])
    assert claim.lost() == "t:1: claimed while a rebalance was under way (fetched before it)"


def test_a_partition_no_longer_assigned_is_named() -> None:
    app = App()
    claim = Ownership(app, 6.0).claim([_message(0), _message(1)])
    app.assigned = {("t", 0)}
    assert claim.lost() == "t:1: no longer assigned to this worker"


class Coordinator:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.answer = True

    async def _do_heartbeat(self) -> bool:
        self.clock.now += 0.5  # the round trip
        return self.answer


def test_the_lease_is_renewed_by_acknowledged_heartbeats_timed_from_their_send() -> None:
    clock = Clock()
    ownership = Ownership(App(), 10.0, clock)  # lease: 8 s
    claim = ownership.claim([_message(0)])
    assert not claim.confirmed(), "no assignment or heartbeat seen yet"
    coordinator = Coordinator(clock)
    ownership.renew()
    ownership.watch(coordinator)
    assert claim.confirmed()
    clock.now += 8.0
    assert not claim.confirmed(), "frozen (or unanswered) for most of a session: perhaps evicted"

    asyncio.run(coordinator._do_heartbeat())
    assert claim.confirmed()
    clock.now += 7.4  # 7.9 s after the heartbeat was sent, 7.4 s after its answer
    assert claim.confirmed()
    clock.now += 0.2
    assert not claim.confirmed()

    coordinator.answer = False  # unknown member: evicted
    asyncio.run(coordinator._do_heartbeat())
    assert not claim.confirmed()
    assert claim.lost() is None, "lost only once the rebalance that follows begins"


def test_without_heartbeats_to_watch_only_rebalances_fence() -> None:
    clock = Clock()
    ownership = Ownership(App(), 10.0, clock)
    ownership.watch(None)
    clock.now += 60
    assert ownership.claim([_message(0)]).confirmed()
