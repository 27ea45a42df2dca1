"""Bounding a worker's stop: during a broker outage Faust's own stop would wait for the broker for as
long as it is down.

Faust stops by committing the acked offsets and flushing the producer; both wait for the broker
(the commit for a group coordinator, without a timeout; the flush for every outstanding record, up
to ``producer_request_timeout``, 20 minutes by default). A SIGTERM during an outage would then hang
until the supervisor kills the worker, idle or not. So two deadlines exit the process (status
:data:`EXIT_UNCLEAN`, with a critical log line) if it has not stopped by itself:

- once a send is abandoned because the worker stops (:class:`~streams.outbox.SendAbandoned`), it
  exits ``grace_s`` later (``streams.app``);
- once the stop begins at all (a SIGTERM), it exits ``stop_timeout_s`` later (``service.worker``),
  before a supervisor's kill (Kubernetes' default terminationGracePeriodSeconds is 30 s).

Exiting then loses nothing: an abandoned batch was withheld (:mod:`streams.withhold`), and every
batch acked before it had its records and its states' changelog records acknowledged by the broker
before its ack (:mod:`streams.app`), so its offsets, if not committed, are applied again at the next
start and skipped as duplicates (the states record the offsets they applied), as after a SIGKILL.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Final

__all__ = ["EXIT_UNCLEAN", "StopDeadline"]

log = logging.getLogger(__name__)

# The process's exit status when the deadline passes: not 0, so a supervisor sees an unclean stop.
EXIT_UNCLEAN: Final = 70


class StopDeadline:
    """Exit the process ``grace_s`` after :meth:`arm`, counted from ``after`` (what armed it)."""

    def __init__(
        self, grace_s: float, after: str = "a send was abandoned", level: int = logging.WARNING
    ) -> None:
        self._grace_s = grace_s
        self._after = after
        self._level = level  # of the line saying it is armed: a normal stop arms one too
        self._timer: threading.Timer | None = None

    def arm(self, reason: str) -> None:
        """Exit the process ``grace_s`` from now, unless it ends first (once armed, later calls do
        nothing). A daemon thread: a process that stops by itself is not held up by it."""
        if self._timer is not None:
            return
        log.log(
            self._level,
            "stopping, %s (%s): exiting in %.0f s at the latest",
            self._after,
            reason,
            self._grace_s,
        )
        self._timer = threading.Timer(self._grace_s, self._exit, args=(reason,))
        self._timer.daemon = True
        self._timer.start()

    def _exit(self, reason: str) -> None:
        log.critical(
            "still stopping %.0f s after %s (%s): is the broker reachable? Exiting with status %d "
            "without Faust's final commit and flush; the states record the offsets they applied, so "
            "what was not committed is applied again at the next start and skipped where it was "
            "applied, and what was acked is on the changelog",
            self._grace_s,
            self._after,
            reason,
            EXIT_UNCLEAN,
        )
        logging.shutdown()
        os._exit(EXIT_UNCLEAN)
