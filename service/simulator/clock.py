"""Pacing simulated time against real time, with an injectable clock so tests never sleep.

The rule: simulated time runs ``speed`` times faster than real time from the start, but never past the
real "now". A start in the past therefore backfills quickly and then continues live, and no record
ever carries a timestamp in the future (the decoder would reject it).
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "Pacer", "SystemClock"]


class Clock(Protocol):
    def wall_ms(self) -> int:
        """Real time now, epoch milliseconds."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (elapsed time is measured on it)."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class Pacer:
    """How far simulated time may have advanced now. ``speed=None`` means as fast as possible."""

    def __init__(self, clock: Clock, sim_start_ms: int, speed: float | None) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive")
        self._clock = clock
        self._sim_start_ms = sim_start_ms
        self._speed = speed
        self._real_start = clock.monotonic()

    def allowed_ms(self) -> int:
        """The latest event time that may be emitted now."""
        now = self._clock.wall_ms()
        if self._speed is None:
            return now
        elapsed = self._clock.monotonic() - self._real_start
        return min(self._sim_start_ms + int(elapsed * 1000 * self._speed), now)

    def seconds_until(self, event_ms: int) -> float:
        """Real seconds to wait before ``event_ms`` may be emitted (0 when it already may)."""
        wait_live = (event_ms - self._clock.wall_ms()) / 1000
        if self._speed is None:
            return max(0.0, wait_live)
        due = self._real_start + (event_ms - self._sim_start_ms) / 1000 / self._speed
        return max(0.0, wait_live, due - self._clock.monotonic())
