"""The run loop: pull records from the simulator as fast as the pacer allows and hand them to a sink."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

from service.simulator.clock import Clock, Pacer, SystemClock
from service.simulator.engine import PlantSimulator
from service.simulator.faults import Fault
from service.simulator.sinks import Sink

__all__ = ["RunStats", "StopReason", "run"]

StopReason = Literal["duration", "max_events", "interrupted"]


@dataclass(frozen=True, slots=True)
class RunStats:
    events: int
    faults: int  # ground-truth records written
    last_ms: int | None  # event time of the last record written
    stopped: StopReason


class _Run:
    def __init__(self, sim: PlantSimulator, sink: Sink, truth: Sink | None) -> None:
        self.sim = sim
        self.sink = sink
        self.truth = truth
        self.events = 0
        self.faults_written = 0
        self.last_ms: int | None = None
        self._faults: deque[Fault] = deque(sim.faults)

    def emit(self, stamp: int, record: dict[str, object]) -> None:
        self.truth_until(stamp + 1)
        self.sink.write(record)
        self.events += 1
        self.last_ms = stamp

    def truth_until(self, before_ms: int) -> None:
        """Ground truth is written as each fault begins, so a stopped run lists only faults it simulated."""
        while self._faults and self._faults[0].start_ms < before_ms:
            fault = self._faults.popleft()
            if self.truth is not None:
                self.truth.write(fault.truth_record(self.sim.zone_of(fault.key)))
                self.truth.flush()
            self.faults_written += 1

    def flush(self) -> None:
        self.sink.flush()
        if self.truth is not None:
            self.truth.flush()

    def stats(self, stopped: StopReason) -> RunStats:
        return RunStats(self.events, self.faults_written, self.last_ms, stopped)


def run(
    sim: PlantSimulator,
    sink: Sink,
    *,
    speed: float | None = 60.0,
    end_ms: int | None = None,
    max_events: int | None = None,
    truth: Sink | None = None,
    clock: Clock | None = None,
    max_sleep_s: float = 1.0,
) -> RunStats:
    """Simulate until ``end_ms`` (exclusive), ``max_events`` records, or Ctrl-C; flushes the sinks always.

    ``speed=None`` runs as fast as possible; either way no record is later than the real "now". Sleeps
    are capped at ``max_sleep_s`` so pacing corrects itself and Ctrl-C is answered promptly.
    """
    state = _Run(sim, sink, truth)
    pacer = Pacer(clock or SystemClock(), sim.start_ms, speed)
    sleeper = clock or SystemClock()
    try:
        while True:
            limit = pacer.allowed_ms() + 1
            if end_ms is not None:
                limit = min(limit, end_ms)
            for stamp, record in sim.timed_events(limit):
                state.emit(stamp, record)
                if max_events is not None and state.events >= max_events:
                    return state.stats("max_events")
            if end_ms is not None and sim.next_ms() >= end_ms:
                state.truth_until(end_ms)
                return state.stats("duration")
            # Nothing more may be emitted yet. Sleep at least 1 ms: rounding can make the computed wait
            # zero while the next record is still not allowed, and a zero sleep would spin.
            wait = max(pacer.seconds_until(sim.next_ms()), 0.001)
            state.flush()  # so a file being tailed, or a topic being read, is current while we wait
            sleeper.sleep(min(wait, max_sleep_s))
    except KeyboardInterrupt:
        return state.stats("interrupted")
    finally:
        state.flush()
