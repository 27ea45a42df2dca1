"""SIGINT and SIGTERM for a supervisor (``linepulse run``): the first one stops it, later ones wait.

The first signal raises :class:`KeyboardInterrupt` wherever the main thread is, as Python's own
SIGINT handling does. A second one (a double Ctrl-C, or a SIGTERM after a Ctrl-C) must not: raised
while the supervisor waits for its worker to commit, it would cut the ordered stop short, stop the
broker under the worker and leave the worker to exit unclean after the supervisor is gone. So once
the stop has begun, a signal only says that it is under way and how long it takes at most.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["StopSignals", "stop_signals"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Whether the stop has begun; the handler of :data:`_SIGNALS` while installed."""

    def __init__(self, still_stopping: str) -> None:
        self._note = still_stopping.encode() + b"\n"
        self.stopping = False

    def begin(self) -> None:
        """The stop has begun for a reason of its own (a child died): signals no longer interrupt it."""
        self.stopping = True

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            # os.write, not print: the handler may run in the middle of a print to the same stream,
            # and a buffered stream refuses a reentrant write.
            os.write(2, self._note)
            return
        # Set before raising: a signal arriving while the KeyboardInterrupt unwinds must not raise another.
        self.stopping = True
        raise KeyboardInterrupt


@contextmanager
def stop_signals(still_stopping: str) -> Iterator[StopSignals]:
    """SIGINT and SIGTERM handled by a :class:`StopSignals` inside the block, the previous handlers after."""
    state = StopSignals(still_stopping)
    previous = {signum: signal.signal(signum, state.handle) for signum in _SIGNALS}
    try:
        yield state
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
