"""Bounding the stop of a worker that abandoned a send: during a broker outage Faust's own stop
would wait for the broker for as long as it is down.

Faust stops by committing the acked offsets and flushing the producer; both wait for the broker
(the commit for a group coordinator, without a timeout; the flush for every outstanding record, up
to ``producer_request_timeout``, 20 minutes by default). A SIGTERM during an outage would then hang
until the supervisor kills the worker. So once a send is abandoned because the worker stops
(:class:`~streams.outbox.SendAbandoned`), the process exits ``grace_s`` later if it has not stopped
by itself.

Exiting then loses nothing: the abandoned batch was withheld (:mod:`streams.withhold`), and every
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
    def __init__(self, grace_s: float) -> None:
        self._grace_s = grace_s
        self._timer: threading.Timer | None = None

    def arm(self, reason: str) -> None:
        """Exit the process ``grace_s`` from now, unless it ends first (once armed, later calls do
        nothing). A daemon thread: a process that stops by itself is not held up by it."""
        if self._timer is not None:
            return
        log.warning("stopping, a send abandoned (%s): exiting in %.0f s at the latest", reason, self._grace_s)
        self._timer = threading.Timer(self._grace_s, self._exit, args=(reason,))
        self._timer.daemon = True
        self._timer.start()

    def _exit(self, reason: str) -> None:
        log.critical(
            "still stopping %.0f s after a send was abandoned (%s): is the broker reachable? Exiting "
            "without Faust's final commit and flush; the unacknowledged batch is applied again at the "
            "next start, and what was acked is on the changelog",
            self._grace_s,
            reason,
        )
        logging.shutdown()
        os._exit(EXIT_UNCLEAN)
