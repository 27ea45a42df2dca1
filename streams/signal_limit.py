"""A machine's distinct sensor signals are bounded: one more is a dead letter, not a bigger state.

Signal names come from telemetry, and every signal a machine has sent keeps its statistics, its
drift/SPC monitor and perhaps an expected level in the machine's state (~1-2 KB), which the worker
writes to the changelog with every batch that changes the machine. A gateway that puts a serial
number or a time into its names would grow that state without end, until the changelog topic
refused the record and the partition stopped for every machine on it. So a message that would give
its machine more than ``PlantConfig.max_signals_per_machine`` signals is dead-lettered whole
(``too_many_signals``, the original bytes kept: raise the limit and replay it), and the machine's
state is not touched; its known signals go on. A limit lowered below what a machine already has
keeps the signals it has and refuses new ones.
"""

from __future__ import annotations

from collections.abc import Container, Sequence

from streams.contract import SensorEvent
from streams.decode import Decoded, Rejection
from streams.frames import Frame

__all__ = ["CODE", "SignalLimit"]

CODE = "too_many_signals"


def _names(event: Decoded) -> Sequence[str]:
    if isinstance(event, Frame):
        return [block.signal for block in event.signals]
    if isinstance(event, SensorEvent):
        return (event.signal,)
    return ()


class SignalLimit:
    """The check of one message against its machine's signals (and those the messages before it in
    the same run add)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def check(self, event: Decoded, known: Container[str], count: int, added: set[str]) -> Rejection | None:
        """None if ``event`` keeps its machine within the limit (its new names then join ``added``);
        else the rejection naming the first signal over it.

        ``known``: the machine's signals, ``count`` of them; ``added``: new names of earlier messages
        of the run, not yet in ``known``.
        """
        names = _names(event)
        if count + len(added) + len(names) <= self.limit:  # within it even if every name is new
            for name in names:
                if name not in known:
                    added.add(name)
            return None
        new = [name for name in dict.fromkeys(names) if name not in known and name not in added]
        total = count + len(added)
        if not new or total + len(new) <= self.limit:  # (a machine over a lowered limit: no new name)
            added.update(new)
            return None
        first = new[max(0, self.limit - total)]
        index = list(names).index(first)
        field = f"signals.{index}.signal" if isinstance(event, Frame) else "signal"
        return Rejection(
            CODE,
            field,
            f"{first!r} would be a new signal of a machine that has {total} of at most {self.limit} "
            "(the plant file's max_signals_per_machine); its known signals are still taken",
        )
