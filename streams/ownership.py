"""Whether this worker still owns the partitions a batch came from: the fence on the batch's sends.

A batch's records (dead letters, KPI records, alerts, then the changed states' changelog records)
are sent until the broker acknowledges them (:mod:`streams.outbox`). If the sends are refused or
unanswered for longer than the consumer group waits, another worker takes the partition over,
applies the batch again from the committed offset and writes its own states. A retry of the old
worker landing after those would make its stale state the changelog's last value for the machine,
and a later recovery would lose the new owner's messages. So the outbox asks the batch's
:class:`Claim` before each (re)try (and while it waits) whether the batch is still this worker's.

A claim is **lost** (for good: the outbox stops, the batch is not acked) when

- a rebalance began since the batch was claimed. Faust's ``App.on_rebalance_start`` runs first
  thing when aiokafka revokes partitions, before Faust waits for the batches in flight, and counts
  ``rebalancing_count``. aiokafka's group protocol is eager: a rebalance first revokes *every*
  partition, those the worker keeps included, and Faust then seeks each assigned partition back to
  its committed offset. So a rebalance since the claim means the partition was taken away (and
  perhaps given back), and the batch is applied again from the committed offset, here or by the
  new owner. A batch claimed during a rebalance was fetched before it (:mod:`streams.delivery` holds
  records back while the consumer rebalances): lost at once;
- one of its partitions is not in the consumer's assignment.

A claim is **unconfirmed** (the outbox sends nothing and waits) while no heartbeat has been
acknowledged for most of a session timeout. A worker whose process was frozen (SIGSTOP, a paused
VM, swapping) longer than the session timeout has been evicted and its partitions given away, but
learns it only from its next heartbeat's answer, a round trip after it wakes, while its outbox would
retry at once. The lease is renewed by each acknowledged heartbeat (timed from when it was sent, so
it never outlasts the broker's own session timer) and by each assignment; the wait ends with the
next acknowledged heartbeat (still the owner) or the rebalance that follows the eviction (lost).

What this cannot fence: a send already handed to the producer when the partition was lost. The
producer may still deliver it (it retries an unanswered request itself); only Kafka transactions
fence that at the broker, and linepulse does not use them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any, Final

__all__ = ["AIOKAFKA_HEARTBEAT_SHA256", "Claim", "Ownership"]

log = logging.getLogger(__name__)

# sha256 of inspect.getsource(aiokafka.consumer.group_coordinator.GroupCoordinator._do_heartbeat):
# the coroutine wrapped below, which returns True when the coordinator still counts the member in
# the group (an acknowledged heartbeat, or one answered "rebalancing", during which the coordinator
# keeps the member until the rebalance times out; that rebalance's revocation then loses the claim).
AIOKAFKA_HEARTBEAT_SHA256: Final = "dc1d6632aaa68e964cf71958a17ebd8a807795edccfac52029f37c233e8e70eb"

# The lease is this share of the session timeout: renewals are timed on this machine's clock, the
# eviction on the broker's, and the two need not run at exactly the same rate.
_LEASE_SHARE: Final = 0.8

_TP: Final = attrgetter("tp")  # ~45 ns a message (a generator of (topic, partition) tuples: ~65)


class Claim:
    """One batch's partitions, claimed at one rebalance epoch; see the module docstring."""

    __slots__ = ("_epoch", "_ownership", "partitions")

    def __init__(self, ownership: Ownership, partitions: frozenset[Any], epoch: int | None) -> None:
        self._ownership = ownership
        self.partitions = partitions
        self._epoch = epoch  # None: claimed during a rebalance

    def lost(self) -> str | None:
        """Why the batch is no longer this worker's (naming its topic-partitions), or None."""
        return self._ownership.why_lost(self.partitions, self._epoch)

    def confirmed(self) -> bool:
        """Whether a heartbeat was acknowledged recently enough to vouch for the claim."""
        return self._ownership.confirmed()


class Ownership:
    """The worker's view of its partitions: rebalance epoch, assignment and heartbeat lease.

    ``app`` is the Faust app (``rebalancing``, ``rebalancing_count``, ``consumer.assignment()``).
    """

    def __init__(
        self, app: Any, session_timeout_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._app = app
        self._lease_s = session_timeout_s * _LEASE_SHARE
        self._clock = clock
        self._renewed: float | None = None
        self._watching: Any = None  # the group coordinator whose heartbeats renew the lease
        self._unwatched = False  # heartbeats could not be watched: no lease (logged once)

    def claim(self, messages: Iterable[Any]) -> Claim:
        """Claim the partitions ``messages`` came from, at the current rebalance epoch."""
        partitions = frozenset(map(_TP, messages))  # Faust's TP: a (topic, partition) named tuple
        epoch = None if self._app.rebalancing else int(self._app.rebalancing_count)
        return Claim(self, partitions, epoch)

    def why_lost(self, partitions: frozenset[Any], epoch: int | None) -> str | None:
        if epoch is None:
            return f"{_names(partitions)}: claimed while a rebalance was under way (fetched before it)"
        if self._app.rebalancing or self._app.rebalancing_count != epoch:
            return f"{_names(partitions)}: a rebalance revoked them after the batch was applied"
        assigned = self._app.consumer.assignment()
        gone = [tp for tp in partitions if tp not in assigned]
        if gone:
            return f"{_names(gone)}: no longer assigned to this worker"
        return None

    def confirmed(self) -> bool:
        if self._unwatched:
            return True
        return self._renewed is not None and self._clock() - self._renewed < self._lease_s

    def renew(self, at: float | None = None) -> None:
        """The group acknowledged this member at ``at`` (now by default)."""
        at = self._clock() if at is None else at
        if self._renewed is None or at > self._renewed:
            self._renewed = at

    def on_assigned(self) -> None:
        """Partitions were just assigned (the group confirmed the member): renew the lease, and
        watch the consumer's heartbeats from now on."""
        self.renew()
        self.watch(_coordinator_of(self._app))

    def watch(self, coordinator: Any) -> None:
        """Renew the lease with each heartbeat ``coordinator`` sees acknowledged (once per coordinator)."""
        if coordinator is not None and coordinator is self._watching:
            return
        original = getattr(coordinator, "_do_heartbeat", None)
        if original is None:
            if not self._unwatched:
                log.warning(
                    "cannot watch the consumer's heartbeats (%r): sends are fenced on rebalances only, "
                    "not on a lapsed session",
                    coordinator,
                )
            self._unwatched = True
            return
        clock, renew = self._clock, self.renew

        async def do_heartbeat() -> Any:
            sent = clock()  # before the broker can have seen it: the lease never outlasts its timer
            acknowledged = await original()
            if acknowledged is True:
                renew(sent)
            return acknowledged

        coordinator._do_heartbeat = do_heartbeat
        self._watching = coordinator
        self._unwatched = False


def _coordinator_of(app: Any) -> Any:
    """The aiokafka group coordinator behind Faust's consumer, or None."""
    try:
        return app.consumer._thread._ensure_consumer()._coordinator
    except Exception:  # another transport, or not started: the caller logs that it cannot watch
        return None


def _names(partitions: Iterable[Any]) -> str:
    return ", ".join(f"{topic}:{partition}" for topic, partition in sorted(partitions))
