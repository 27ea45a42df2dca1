"""The plant's local calendar: where hour, shift and production-day windows start and end.

Every instant is an integer of epoch milliseconds (UTC); local time is used only to place window
boundaries, so machine time can be split exactly at them on the hot path.

Rules, chosen so that windows always tile time and never depend on which instant asked:

* **Local times that occur once** resolve to that instant.
* **Local times that don't exist** (the spring-forward gap) resolve the way a wall clock would: to
  the first instant at which the clock reads that time *or later*, i.e. the transition instant.
  A shift starting at 02:30 in Berlin on 2026-03-29 starts at 03:00 CEST.
* **Local times that occur twice** (fall back) resolve to the first occurrence (``fold=0``).
  Together: a local time ``x`` resolves to the first instant whose wall clock reads ``x`` or later.
* **Hours** are maximal stretches during which the wall clock shows one date and hour and runs
  without jumping. So on fall back the repeated hour is two windows, on spring forward the skipped
  hour has none. Every hour lasts at most 3,600,000 ms; it is exactly that unless an offset
  transition is not a whole hour or not at a whole local hour (Australia/Lord_Howe's 30-minute DST,
  historic local-mean-time changes): then the windows touching the transition are shorter.
* **Production days** run from ``day_start`` on one local date to ``day_start`` on the next: 24 h,
  or 23/25 h (23.5/24.5 h on Lord Howe) across a transition.
* **Shifts** run from ``start`` to ``end`` local time, on the next date when they cross midnight.
  A shift with ``days`` starts only on those weekdays, and no shift starts on a holiday (a night
  shift that started the evening before still ends as usual).
  Time outside every shift is unscheduled (``shift_at`` returns ``None``). Shifts may *overlap*
  (a handover, e.g. 06:00-14:15 and 14:00-22:15): the shift starting later wins from its start, so
  the earlier one is cut there. A shift lying entirely inside another (or two identical shifts) is
  rejected, because the outer one would have to resume afterwards and a shift occurrence is one
  contiguous window. An occurrence squeezed to nothing (entirely inside a DST gap, or starting in the
  same gap as a later shift) does not happen that day.

Transition instants are found by bisection on the zone's UTC offset, assuming (as for every real
zone) at most one offset change within any hour or within a DST gap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from itertools import pairwise
from typing import Final, Literal, get_args
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from models.bounded_cache import bounded
from models.plant import PlantConfig, Shift

__all__ = ["PlantCalendar", "WindowKind", "WindowSpan"]

WindowKind = Literal["hour", "shift", "day"]
_KINDS: frozenset[str] = frozenset(get_args(WindowKind))

_HOUR_MS = 3_600_000
_DAY_US = 86_400_000_000
_MS = timedelta(milliseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
# Dates searched either side of an instant's local date. Two covers a shift crossing midnight plus
# any real offset change (the largest, Samoa 2011, skipped one whole local date).
_MARGIN_DAYS = 2
_RESOLVED_MAX = 4096  # a replay over years must not grow the cache forever
_UNSEEN: Final = -1 << 62  # no offset is this far from UTC


@dataclass(frozen=True, slots=True)
class WindowSpan:
    """One calendar window: ``[start_ms, end_ms)`` in epoch milliseconds."""

    kind: WindowKind
    start_ms: int  # inclusive
    end_ms: int  # exclusive
    shift: str | None  # the shift's name when kind == "shift", else None

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(frozen=True, slots=True)
class _Occurrence:
    """One shift on one local date, before overlaps are cut."""

    start_ms: int
    end_ms: int
    local_start: datetime  # naive; breaks ties when two starts collapse into one DST gap
    name: str


def _first_true(lo: int, hi: int, pred: Callable[[int], bool]) -> int:
    """Smallest t in (lo, hi] with pred(t), given pred(lo) is false, pred(hi) true and pred monotone."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _tod_us(clock: time) -> int:
    return ((clock.hour * 60 + clock.minute) * 60 + clock.second) * 1_000_000 + clock.microsecond


class PlantCalendar:
    """Hour, shift and production-day windows of one plant, in its local time zone.

    Each query memoises its last answer per kind: callers ask once per window change, mostly about
    the window they just left or the one after, so the common case is a range check.
    """

    def __init__(
        self, zone: ZoneInfo, shifts: Sequence[Shift], day_start: time, holidays: Iterable[date] = ()
    ) -> None:
        if day_start.tzinfo is not None or any(s.start.tzinfo or s.end.tzinfo for s in shifts):
            raise ValueError("day_start and shift times must be naive local clock times")
        self._zone = zone
        self._shifts: tuple[Shift, ...] = tuple(sorted(shifts, key=lambda s: _tod_us(s.start)))
        self._day_start = day_start
        self._holidays = frozenset(holidays)
        self._reject_nested(self._shifts)
        # Private memo of the last answer per kind; every entry is a pure function of its bounds,
        # so a hit is always correct.
        self._hour: WindowSpan | None = None
        self._day: WindowSpan | None = None
        self._shift: WindowSpan | None = None
        self._gap: tuple[int, int] | None = None  # last unscheduled stretch [start, next shift start)
        self._next: tuple[int, int] | None = None  # (valid from, answer) of next_shift_start
        # Resolved boundaries: shift and day queries around nearby instants share most of them.
        self._resolved: dict[tuple[date, time], tuple[int, datetime]] = {}
        # Epoch hour -> the UTC offset throughout it, None if the clocks change inside it.
        self._hour_offsets: dict[int, int | None] = {}

    @classmethod
    def from_plant(cls, plant: PlantConfig) -> PlantCalendar:
        return cls(plant.zone, plant.shifts, plant.production_day_start, plant.holidays)

    @classmethod
    def for_site(cls, plant: PlantConfig, tenant: str, site: str) -> PlantCalendar:
        """The calendar of one site: its own zone, shifts and day start, else the plant's."""
        return cls(*plant.site_calendar(tenant, site))

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    @property
    def shifts(self) -> tuple[Shift, ...]:
        """The configured shifts, ordered by local start time."""
        return self._shifts

    @staticmethod
    def _reject_nested(shifts: Sequence[Shift]) -> None:
        # On a naive two-week clock from a Monday: every occurrence [start, start + length) by the
        # weekdays it starts on, so shifts on different days (weekday and weekend crews) never clash.
        monday = date(2024, 1, 1)
        spans = []
        for shift in shifts:
            length = (_tod_us(shift.end) - _tod_us(shift.start)) % _DAY_US
            for day in range(14):
                if shift.starts_on_weekday_of(monday + timedelta(days=day)):
                    start = day * _DAY_US + _tod_us(shift.start)
                    spans.append((shift.name, start, start + length))
        for outer, o_start, o_end in spans:
            for inner, i_start, i_end in spans:
                if inner != outer and o_start <= i_start and i_end <= o_end:
                    raise ValueError(
                        f"shift {inner!r} lies entirely within shift {outer!r}; overlapping shifts are "
                        "allowed (the later start wins) but one shift cannot contain another"
                    )

    # -- conversions -------------------------------------------------------------------------

    def utc_offset_ms(self, ts_ms: int) -> int:
        """The plant's UTC offset at ``ts_ms``, in milliseconds."""
        offset = (_EPOCH + timedelta(milliseconds=ts_ms)).astimezone(self._zone).utcoffset()
        assert offset is not None  # a ZoneInfo always has one
        return offset // _MS

    def utc_offset_runs(self, times: npt.NDArray[np.int64]) -> list[tuple[int, int, int]]:
        """Readings at ``times`` (epoch ms, oldest first) as runs of one UTC offset: ``(start, end,
        offset_ms)`` per run, indices as in ``times[start:end]``. One run, unless the readings span
        a change of the clocks (daylight saving, or a zone's change of its standard time)."""
        count = times.shape[0]
        if count == 0:
            return []
        first, last = int(times[0]) // _HOUR_MS, int(times[-1]) // _HOUR_MS
        offset = self._steady_offset(first, last)
        if offset is not None:
            return [(0, count, offset)]
        offsets = np.empty(count, dtype=np.int64)
        hours = times // _HOUR_MS
        starts = np.flatnonzero(np.diff(hours)) + 1
        for lo, hi in pairwise([0, *starts.tolist(), count]):
            steady = self._hour_offset(int(hours[lo]))
            if steady is not None:
                offsets[lo:hi] = steady
            else:  # the hour the clocks change in (a few a year): reading by reading
                offsets[lo:hi] = [self.utc_offset_ms(int(ts)) for ts in times[lo:hi]]
        edges = [0, *(np.flatnonzero(np.diff(offsets)) + 1).tolist(), count]
        return [(lo, hi, int(offsets[lo])) for lo, hi in pairwise(edges)]

    def _steady_offset(self, first: int, last: int) -> int | None:
        """The UTC offset throughout epoch hours ``first`` to ``last``; None if it changes in them (or
        they span over two days, which the caller then takes hour by hour)."""
        offset = self._hour_offset(first)
        if offset is None or last == first:
            return offset
        if last - first > 48:  # batches span seconds to a day: no hour loop for a stray long one
            return None
        if any(self._hour_offset(hour) != offset for hour in range(first + 1, last + 1)):
            return None
        return offset

    def _hour_offset(self, hour: int) -> int | None:
        """The UTC offset throughout epoch hour ``hour``; None if it changes inside it."""
        found = self._hour_offsets.get(hour, _UNSEEN)
        if found != _UNSEEN:
            return found
        start = self.utc_offset_ms(hour * _HOUR_MS)
        steady = start if self.utc_offset_ms((hour + 1) * _HOUR_MS - 1) == start else None
        bounded(self._hour_offsets, _RESOLVED_MAX)[hour] = steady
        return steady

    def _wall_ms(self, ts_ms: int) -> int:
        """What the plant's wall clock reads at ts, as naive milliseconds since 1970-01-01 00:00."""
        return ts_ms + self.utc_offset_ms(ts_ms)

    def _local_date(self, ts_ms: int) -> date:
        return (_NAIVE_EPOCH + timedelta(milliseconds=self._wall_ms(ts_ms))).date()

    def local_date(self, ts_ms: int) -> date:
        """The plant's local calendar date at ``ts_ms`` (a night shift's date is its start's)."""
        return self._local_date(ts_ms)

    def local_instant_ms(self, local: datetime) -> int:
        """The instant of a naive local time: the first whose wall clock reads it or later (a time
        in a spring-forward gap is the transition, a repeated one its first occurrence)."""
        if local.tzinfo is not None:
            raise ValueError("local_instant_ms takes a naive local time")
        return self._resolve(local.date(), local.time())[0]

    def _resolve(self, day: date, clock: time) -> tuple[int, datetime]:
        """The first instant whose wall clock reads ``day clock`` or later (see module doc)."""
        key = (day, clock)
        found = self._resolved.get(key)
        if found is None:
            found = bounded(self._resolved, _RESOLVED_MAX)[key] = self._resolve_uncached(day, clock)
        return found

    def _resolve_uncached(self, day: date, clock: time) -> tuple[int, datetime]:
        naive = datetime.combine(day, clock)
        naive_ms = (naive - _NAIVE_EPOCH) // _MS
        first = (naive.replace(tzinfo=self._zone, fold=0) - _EPOCH) // _MS
        if self._wall_ms(first) == naive_ms:
            return first, naive  # exists; fold=0 is the first occurrence when it is ambiguous
        # In a gap: fold=0 and fold=1 map to the two sides of the transition; the clock first
        # reads this time or later at the transition itself.
        other = (naive.replace(tzinfo=self._zone, fold=1) - _EPOCH) // _MS
        lo, hi = min(first, other), max(first, other)
        return _first_true(lo, hi, lambda t: self._wall_ms(t) >= naive_ms), naive

    # -- hours -------------------------------------------------------------------------------

    def hour_at(self, ts_ms: int) -> WindowSpan:
        """The local clock hour containing ts (see module doc for DST)."""
        cached = self._hour
        if cached is not None and cached.start_ms <= ts_ms < cached.end_ms:
            return cached
        offset = self.utc_offset_ms(ts_ms)
        into_hour = (ts_ms + offset) % _HOUR_MS

        def same(t: int) -> bool:
            return self.utc_offset_ms(t) == offset

        # Start: the local :00 on this run of the clock, unless the clock jumped since then.
        start = ts_ms - into_hour
        if not same(start):
            start = _first_true(start, ts_ms, same)
        # End: the next local :00, unless the clock jumps before it (a jump exactly at it is fine).
        end = ts_ms + (_HOUR_MS - into_hour)
        if not same(end - 1):
            end = _first_true(ts_ms, end - 1, lambda t: not same(t))
        span = WindowSpan("hour", start, end, None)
        self._hour = span
        return span

    # -- production days ---------------------------------------------------------------------

    def day_at(self, ts_ms: int) -> WindowSpan:
        """The production day containing ts: from ``day_start`` local to ``day_start`` next date."""
        cached = self._day
        if cached is not None and cached.start_ms <= ts_ms < cached.end_ms:
            return cached
        local = self._local_date(ts_ms)
        bounds = [
            self._resolve(local + timedelta(days=k), self._day_start)[0]
            for k in range(-_MARGIN_DAYS, _MARGIN_DAYS + 1)
        ]
        # Bounds never decrease with the date; equal ones (a gap longer than a day) are skipped.
        start = max(b for b in bounds if b <= ts_ms)
        end = min(b for b in bounds if b > ts_ms)
        span = WindowSpan("day", start, end, None)
        self._day = span
        return span

    # -- shifts ------------------------------------------------------------------------------

    def _occurrences(self, first: date, last: date) -> list[WindowSpan]:
        """Shift windows starting on local dates first..last, overlaps cut, empty ones dropped.

        Computed one date further so the last wanted date's windows are cut correctly too.
        """
        raw: list[_Occurrence] = []
        day = first
        while day <= last + timedelta(days=1):
            for shift in self._shifts if day not in self._holidays else ():
                if not shift.starts_on_weekday_of(day):
                    continue
                start, local_start = self._resolve(day, shift.start)
                end_day = day + timedelta(days=1) if shift.crosses_midnight else day
                end, _ = self._resolve(end_day, shift.end)
                raw.append(_Occurrence(start, end, local_start, shift.name))
            day += timedelta(days=1)
        raw.sort(key=lambda o: (o.start_ms, o.local_start))
        spans: list[WindowSpan] = []
        for i, occ in enumerate(raw):
            if occ.local_start.date() > last:
                break
            end = occ.end_ms
            if i + 1 < len(raw):
                end = min(end, raw[i + 1].start_ms)  # the later start wins from its start
            if end > occ.start_ms:
                spans.append(WindowSpan("shift", occ.start_ms, end, occ.name))
        return spans

    def _shifts_around(self, ts_ms: int) -> list[WindowSpan]:
        local = self._local_date(ts_ms)
        margin = timedelta(days=_MARGIN_DAYS)
        return self._occurrences(local - margin, local + margin)

    def shift_at(self, ts_ms: int) -> WindowSpan | None:
        """The shift window containing ts, or None when ts is unscheduled (or no shifts exist)."""
        if not self._shifts:
            return None
        cached = self._shift
        if cached is not None and cached.start_ms <= ts_ms < cached.end_ms:
            return cached
        gap = self._gap
        if gap is not None and gap[0] <= ts_ms < gap[1]:
            return None
        previous_end: int | None = None
        for span in self._shifts_around(ts_ms):
            if span.start_ms > ts_ms:
                if previous_end is not None:
                    self._gap = (previous_end, span.start_ms)
                return None
            if ts_ms < span.end_ms:
                self._shift = span
                return span
            previous_end = span.end_ms
        # No shift starts for days around ts (a weekend, holidays, a shutdown): remember the gap
        # up to the next start, so a silent weekend is not searched again at every event.
        following = self.next_shift_start(ts_ms)
        if following is not None:
            self._gap = (ts_ms if previous_end is None else previous_end, following)
        return None

    def is_scheduled(self, ts_ms: int) -> bool:
        """Whether ts is inside a shift; without shifts all time is scheduled."""
        return not self._shifts or self.shift_at(ts_ms) is not None

    def scheduled_spans(self, start_ms: int, end_ms: int) -> list[tuple[int, int, bool]]:
        """``[start, end)`` cut where shifts begin and end: ``(from, until, inside a shift)``.

        Without shifts all time is scheduled: one span.
        """
        spans = []
        cursor = start_ms
        while cursor < end_ms:
            shift = self.shift_at(cursor) if self._shifts else None
            scheduled = shift is not None or not self._shifts
            if scheduled:
                until = min(end_ms, shift.end_ms if shift is not None else end_ms)
            else:
                next_shift = self.next_shift_start(cursor)
                until = end_ms if next_shift is None else min(end_ms, next_shift)
            spans.append((cursor, until, scheduled))
            cursor = until
        return spans

    def next_shift_start(self, ts_ms: int) -> int | None:
        """The first shift start strictly after ts, or None when no shifts are configured."""
        if not self._shifts:
            return None
        cached = self._next
        if cached is not None and cached[0] <= ts_ms < cached[1]:
            return cached[1]
        local = self._local_date(ts_ms)
        # Normally found within the margin; look further only if whole days were squeezed out.
        for extra in range(0, 366, 7):
            spans = self._occurrences(
                local - timedelta(days=_MARGIN_DAYS), local + timedelta(days=_MARGIN_DAYS + extra)
            )
            valid_from = ts_ms
            for span in spans:
                if span.start_ms > ts_ms:
                    # Same answer for every instant from the previous start on: callers in a gap
                    # ask this once per event.
                    self._next = (valid_from, span.start_ms)
                    return span.start_ms
                valid_from = span.start_ms
        return None  # every occurrence for a year lies in DST gaps: no real zone does this

    # -- dispatch and formatting -------------------------------------------------------------

    def window_at(self, kind: WindowKind, ts_ms: int) -> WindowSpan | None:
        """The window of the given kind containing ts (None only for an unscheduled shift time)."""
        if kind == "hour":
            return self.hour_at(ts_ms)
        if kind == "day":
            return self.day_at(ts_ms)
        if kind == "shift":
            return self.shift_at(ts_ms)
        raise ValueError(f"unknown window kind {kind!r}; expected one of {sorted(_KINDS)}")

    def local_isoformat(self, ts_ms: int) -> str:
        """RFC 3339 with the plant's offset, e.g. ``2026-11-25T06:00:00+09:00``.

        Milliseconds appear only when non-zero. RFC 3339 offsets have whole minutes, so a historic
        local-mean-time offset with seconds is rounded to the minute and the local time shown is
        shifted with it: the string still names exactly the same instant.
        """
        offset_ms = self.utc_offset_ms(ts_ms)
        if offset_ms % 60_000:
            offset_ms = round(offset_ms / 60_000) * 60_000
        fixed = timezone(timedelta(milliseconds=offset_ms))
        local = (_EPOCH + timedelta(milliseconds=ts_ms)).astimezone(fixed)
        return local.isoformat(timespec="milliseconds" if ts_ms % 1000 else "seconds")
