"""The plant's planned stops in event time: breaks and lunch inside each shift, and time outside all shifts.

Windows are built from the local calendar (shifts may cross midnight) one week at a time, on demand,
because the simulator may run forever.

On DST days a break starts at its local wall-clock time and lasts its length in elapsed time, as
people take it: a 30-minute lunch at 02:30 on the fall-back night is the first 02:30 to 03:00 (not
the whole repeated hour, 90 minutes), and on the spring-forward night, when 02:30 does not exist, it
starts at the first instant after the gap (03:00) and still lasts 30 minutes. Local times resolve
as the KPI calendar resolves shift boundaries (:meth:`models.calendar.PlantCalendar.local_instant_ms`),
so the simulator's shifts and the stream's shift windows agree. Offsets into a shift scale with its
wall-clock length (8 hours for 22:00-06:00, also on the nights that last 7 or 9).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from models.calendar import PlantCalendar
from models.plant import PlantConfig, Shift

__all__ = ["BREAK_PLAN", "BreakSchedule", "PlannedWindow"]

# (offset into an 8-hour shift, length, reason). Offsets scale with the shift's length; lengths don't.
BREAK_PLAN: tuple[tuple[timedelta, timedelta, str], ...] = (
    (timedelta(hours=2), timedelta(minutes=10), "break"),
    (timedelta(hours=4, minutes=30), timedelta(minutes=30), "lunch"),
    (timedelta(hours=6, minutes=30), timedelta(minutes=10), "break"),
)
_CHUNK_MS = 7 * 86_400_000
_EIGHT_HOURS = timedelta(hours=8)
_ONE_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True, order=True)
class PlannedWindow:
    start_ms: int
    end_ms: int
    reason: str


class BreakSchedule:
    """Answers "is this instant a planned stop, and when does that next change?" for one site
    (``tenant`` and ``site``; without them, or for a site without a calendar of its own, the plant's)."""

    def __init__(self, plant: PlantConfig, tenant: str | None = None, site: str | None = None) -> None:
        if tenant is None or site is None:
            zone, shifts, day_start = plant.zone, tuple(plant.shifts), plant.production_day_start
            holidays: tuple[date, ...] = tuple(plant.holidays)
        else:
            zone, shifts, day_start, holidays = plant.site_calendar(tenant, site)
        self._calendar = PlantCalendar(zone, shifts, day_start, holidays)
        self._holidays = frozenset(holidays)
        self._shifts: tuple[Shift, ...] = shifts  # as listed (the calendar sorts its own copy)
        self._windows: list[PlannedWindow] = []
        self._starts: list[int] = []
        self._chunks: set[int] = set()

    @property
    def zone(self) -> ZoneInfo:
        return self._calendar.zone

    def window_at(self, millis: int) -> PlannedWindow | None:
        self._cover(millis)
        index = bisect.bisect_right(self._starts, millis) - 1
        if index >= 0 and self._windows[index].end_ms > millis:
            return self._windows[index]
        return None

    def next_boundary(self, millis: int) -> int | None:
        """The first window start or end strictly after ``millis`` (None: the plant never stops)."""
        if not self._shifts:
            return None
        current = self.window_at(millis)
        if current is not None:
            return current.end_ms
        self._cover(millis + _CHUNK_MS)
        index = bisect.bisect_right(self._starts, millis)
        return self._windows[index].start_ms if index < len(self._windows) else None

    def _cover(self, millis: int) -> None:
        if not self._shifts:
            return
        # The neighbouring chunks too, so a window that starts just before `millis` is known.
        for chunk in (millis // _CHUNK_MS - 1, millis // _CHUNK_MS, millis // _CHUNK_MS + 1):
            if chunk not in self._chunks:
                self._chunks.add(chunk)
                self._add_chunk(chunk)

    def _add_chunk(self, chunk: int) -> None:
        low, high = chunk * _CHUNK_MS, (chunk + 1) * _CHUNK_MS
        zone = self._calendar.zone
        first = datetime.fromtimestamp(low / 1000, tz=zone).date() - timedelta(days=2)
        last = datetime.fromtimestamp(high / 1000, tz=zone).date() + timedelta(days=2)
        # A window belongs to the chunk its start falls in, so chunks never duplicate or split one.
        fresh = [window for window in self._windows_for(first, last) if low <= window.start_ms < high]
        merged = sorted({*self._windows, *fresh})
        self._windows = merged
        self._starts = [window.start_ms for window in merged]

    def _windows_for(self, first: date, last: date) -> list[PlannedWindow]:
        shifts: list[tuple[int, int]] = []
        breaks: list[PlannedWindow] = []
        day = first
        while day <= last:
            for shift in self._shifts if day not in self._holidays else ():
                if not shift.starts_on_weekday_of(day):
                    continue  # a weekend or a holiday: the time between shifts below covers it
                # Naive local times: arithmetic on them is wall-clock arithmetic, on purpose here.
                begin = datetime.combine(day, shift.start)
                end = datetime.combine(day + timedelta(days=1) if shift.crosses_midnight else day, shift.end)
                begin_ms, end_ms = self._instant(begin), self._instant(end)
                if end_ms <= begin_ms:
                    continue  # squeezed to nothing by a DST gap: the calendar skips it too
                shifts.append((begin_ms, end_ms))
                scale = (end - begin) / _EIGHT_HOURS
                for offset, length, reason in BREAK_PLAN:
                    break_start = self._instant(begin + offset * scale)
                    break_end = break_start + length // _ONE_MS  # elapsed, whatever the clock does
                    if break_end <= end_ms:
                        breaks.append(PlannedWindow(break_start, break_end, reason))
            day += timedelta(days=1)
        windows = sorted(breaks)
        # Time between shifts (after merging overlapping ones) is planned: nobody is scheduled to work.
        shifts.sort()
        covered_end: int | None = None
        for begin_ms, end_ms in shifts:
            if covered_end is not None and begin_ms > covered_end:
                windows.append(PlannedWindow(covered_end, begin_ms, "no_shift"))
            covered_end = end_ms if covered_end is None else max(covered_end, end_ms)
        return _non_overlapping(sorted(windows))

    def _instant(self, local: datetime) -> int:
        return self._calendar.local_instant_ms(local)


def _non_overlapping(windows: list[PlannedWindow]) -> list[PlannedWindow]:
    """Clip overlaps (overlapping shifts' breaks) so that lookups by start time stay unambiguous."""
    result: list[PlannedWindow] = []
    for window in windows:
        if result and window.start_ms < result[-1].end_ms:
            if window.end_ms > result[-1].end_ms:
                result.append(PlannedWindow(result[-1].end_ms, window.end_ms, window.reason))
            continue
        result.append(window)
    return result
