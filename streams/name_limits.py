"""A machine's sensor signals and quality characteristics are bounded: one more is a dead letter,
not a bigger state.

Their names come from telemetry, and each keeps state in the machine's: a signal its statistics,
its drift/SPC monitor and perhaps an expected level (~1-2 KB), a characteristic its monitors (one
per product) and capability. The worker writes that state to the changelog with every batch that
changes the machine. A gateway that puts a serial number or a time into its names would grow it
without end, until the changelog topic refused the record and the partition stopped for every
machine on it. So a message that would give its machine more than
``PlantConfig.max_signals_per_machine`` signals (``max_characteristics_per_machine``
characteristics) is dead-lettered whole (``too_many_signals``, ``too_many_characteristics``; the
original bytes kept: raise the limit and replay it), and the machine's state is not touched; what
it knows goes on. A limit lowered below what a machine already has keeps what it has and refuses
new names.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from models.machine_state import MachineState
from models.series_monitors import monitor_subject
from streams.contract import QualityEvent, SensorEvent
from streams.decode import Decoded, Rejection
from streams.frames import Frame

__all__ = ["CharacteristicLimit", "SignalLimit"]


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

    def check(self, event: Decoded, known: Collection[str], added: set[str]) -> Rejection | None:
        """None if ``event`` keeps its machine within the limit (its new names then join ``added``);
        else the rejection naming the first signal over it.

        ``known``: the machine's signals; ``added``: new names of earlier messages of the run, not
        yet in ``known``.
        """
        names = _names(event)
        if len(known) + len(added) + len(names) <= self.limit:  # within it even if every name is new
            for name in names:
                if name not in known:
                    added.add(name)
            return None
        new = [name for name in dict.fromkeys(names) if name not in known and name not in added]
        total = len(known) + len(added)
        if not new or total + len(new) <= self.limit:  # (a machine over a lowered limit: no new name)
            added.update(new)
            return None
        first = new[max(0, self.limit - total)]
        index = list(names).index(first)
        field = f"signals.{index}.signal" if isinstance(event, Frame) else "signal"
        return Rejection(
            "too_many_signals",
            field,
            f"{first!r} would be a new signal of a machine that has {total} of at most {self.limit} "
            "(the plant file's max_signals_per_machine); its known signals are still taken",
        )


def _characteristics(state: MachineState) -> set[str]:
    """The characteristics a machine's state keeps: each has a monitor (``characteristics:bore`` or,
    per product, ``characteristics:bore@P1``) or capability (``bore|P1|day``), most both; a baseline
    reset drops the monitors, never the capability."""
    names = {name for kind, name in map(monitor_subject, state.monitors) if kind == "characteristics"}
    names.update(key.split("|", 1)[0] for key in state.capability)
    return names


class CharacteristicLimit:
    """The check of one quality measurement against its machine's characteristics."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def check(self, event: Decoded, state: MachineState) -> Rejection | None:
        if not isinstance(event, QualityEvent):
            return None
        # Every characteristic has an entry in one of the two: fewer entries, no need to count.
        if len(state.monitors) + len(state.capability) < self.limit:
            return None
        known = _characteristics(state)
        if event.characteristic in known or len(known) < self.limit:
            return None
        return Rejection(
            "too_many_characteristics",
            "characteristic",
            f"{event.characteristic!r} would be a new characteristic of a machine that has {len(known)} "
            f"of at most {self.limit} (the plant file's max_characteristics_per_machine)",
        )
