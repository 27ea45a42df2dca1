"""The plant calendar: hand-worked windows across DST and odd offsets, then properties.

Hand-worked cases state their expectations as local RFC 3339 strings, so a reader can check them
against a wall clock. The property tests compare with a slow minute-by-minute reference that knows
nothing of fold or bisection: a local time resolves to the first instant whose wall clock reads it
or later, and an hour boundary is any instant where the clock shows :00 or jumps.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from models.calendar import PlantCalendar, WindowSpan
from models.plant import MachineSpec, PlantConfig, Shift

__all__: list[str] = []

H = 3_600_000
MIN = 60_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NAIVE_EPOCH = datetime(1970, 1, 1)


def ms(iso: str) -> int:
    """Epoch milliseconds of an RFC 3339 string with an explicit offset."""
    return (datetime.fromisoformat(iso) - EPOCH) // timedelta(milliseconds=1)


def shift(name: str, start: str, end: str) -> Shift:
    return Shift(name=name, start=start, end=end)  # the validator parses HH:MM


THREE_SHIFTS = [
    shift("early", "06:00", "14:00"),
    shift("late", "14:00", "22:00"),
    shift("night", "22:00", "06:00"),
]


def calendar(zone: str, shifts: list[Shift] | None = None, day_start: time = time(6)) -> PlantCalendar:
    return PlantCalendar(ZoneInfo(zone), THREE_SHIFTS if shifts is None else shifts, day_start)


def local(cal: PlantCalendar, span: WindowSpan) -> tuple[str, str]:
    return cal.local_isoformat(span.start_ms), cal.local_isoformat(span.end_ms)


def hours_between(cal: PlantCalendar, start_ms: int, end_ms: int) -> list[WindowSpan]:
    spans, ts = [], start_ms
    while ts < end_ms:
        span = cal.hour_at(ts)
        spans.append(span)
        ts = span.end_ms
    return spans


# -- Asia/Seoul: three shifts, no DST ----------------------------------------------------------


def test_seoul_three_shifts() -> None:
    cal = calendar("Asia/Seoul")
    early = cal.shift_at(ms("2026-11-25T06:00:00+09:00"))
    assert early is not None
    assert (early.shift, *local(cal, early)) == (
        "early",
        "2026-11-25T06:00:00+09:00",
        "2026-11-25T14:00:00+09:00",
    )
    late = cal.shift_at(ms("2026-11-25T21:59:59.999+09:00"))
    assert late is not None and late.shift == "late" and late.duration_ms == 8 * H
    night = cal.shift_at(ms("2026-11-26T05:59:59.999+09:00"))
    assert night is not None
    assert (night.shift, *local(cal, night)) == (
        "night",
        "2026-11-25T22:00:00+09:00",
        "2026-11-26T06:00:00+09:00",
    )
    # Consecutive shifts touch: the next start is the current end.
    assert cal.next_shift_start(early.start_ms) == early.end_ms
    assert cal.next_shift_start(night.start_ms + 1) == night.end_ms


def test_seoul_day_and_hour() -> None:
    cal = calendar("Asia/Seoul")
    day = cal.day_at(ms("2026-11-26T05:00:00+09:00"))
    assert local(cal, day) == ("2026-11-25T06:00:00+09:00", "2026-11-26T06:00:00+09:00")
    assert day.kind == "day" and day.shift is None and day.duration_ms == 24 * H
    hour = cal.hour_at(ms("2026-11-25T06:59:59.999+09:00"))
    assert local(cal, hour) == ("2026-11-25T06:00:00+09:00", "2026-11-25T07:00:00+09:00")
    assert hour.kind == "hour" and hour.shift is None


def test_window_at_dispatches_and_rejects_unknown_kinds() -> None:
    cal = calendar("Asia/Seoul")
    ts = ms("2026-11-25T10:30:00+09:00")
    assert cal.window_at("hour", ts) == cal.hour_at(ts)
    assert cal.window_at("day", ts) == cal.day_at(ts)
    assert cal.window_at("shift", ts) == cal.shift_at(ts)
    with pytest.raises(ValueError, match="unknown window kind"):
        cal.window_at("week", ts)  # type: ignore[arg-type]


def test_from_plant_uses_zone_shifts_and_default_day_start() -> None:
    machine = MachineSpec(tenant="acme", site="s1", line="l1", id="m1")
    plant = PlantConfig(timezone="Asia/Seoul", shifts=THREE_SHIFTS, machines=[machine])
    cal = PlantCalendar.from_plant(plant)
    day = cal.day_at(ms("2026-11-25T05:59:00+09:00"))
    assert local(cal, day) == ("2026-11-24T06:00:00+09:00", "2026-11-25T06:00:00+09:00")
    shifted = plant.model_copy(update={"day_start": time(0)})
    day = PlantCalendar.from_plant(shifted).day_at(ms("2026-11-25T05:59:00+09:00"))
    assert local(cal, day) == ("2026-11-25T00:00:00+09:00", "2026-11-26T00:00:00+09:00")


def test_no_shifts() -> None:
    cal = calendar("UTC", shifts=[], day_start=time(0))
    assert cal.shift_at(0) is None
    assert cal.window_at("shift", 0) is None
    assert cal.next_shift_start(0) is None
    assert cal.day_at(0) == WindowSpan("day", 0, 24 * H, None)


# -- Europe/Berlin: DST both ways --------------------------------------------------------------


def test_berlin_spring_forward_hours() -> None:
    cal = calendar("Europe/Berlin")
    spans = hours_between(cal, ms("2026-03-29T00:00:00+01:00"), ms("2026-03-29T05:00:00+02:00"))
    assert [cal.local_isoformat(s.start_ms) for s in spans] == [
        "2026-03-29T00:00:00+01:00",
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",  # 02:00-02:59 does not exist
        "2026-03-29T04:00:00+02:00",
    ]
    assert all(s.duration_ms == H for s in spans)


def test_berlin_fall_back_hours() -> None:
    cal = calendar("Europe/Berlin")
    spans = hours_between(cal, ms("2026-10-25T00:00:00+02:00"), ms("2026-10-25T04:00:00+01:00"))
    assert [cal.local_isoformat(s.start_ms) for s in spans] == [
        "2026-10-25T00:00:00+02:00",
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",  # the repeated hour is its own window
        "2026-10-25T03:00:00+01:00",
    ]
    assert all(s.duration_ms == H for s in spans)


@pytest.mark.parametrize(
    ("zone", "during", "start", "end", "hours"),
    [
        (
            "Europe/Berlin",
            "2026-03-29T04:00:00+02:00",
            "2026-03-28T22:00:00+01:00",
            "2026-03-29T06:00:00+02:00",
            7,
        ),
        (
            "Europe/Berlin",
            "2026-10-25T02:30:00+01:00",
            "2026-10-24T22:00:00+02:00",
            "2026-10-25T06:00:00+01:00",
            9,
        ),
        (
            "America/New_York",
            "2026-03-08T01:00:00-05:00",
            "2026-03-07T22:00:00-05:00",
            "2026-03-08T06:00:00-04:00",
            7,
        ),
        (
            "America/New_York",
            "2026-11-01T01:30:00-05:00",
            "2026-10-31T22:00:00-04:00",
            "2026-11-01T06:00:00-05:00",
            9,
        ),
    ],
)
def test_night_shift_across_dst(zone: str, during: str, start: str, end: str, hours: int) -> None:
    cal = calendar(zone)
    night = cal.shift_at(ms(during))
    assert night is not None
    assert (night.shift, *local(cal, night)) == ("night", start, end)
    assert night.duration_ms == hours * H


@pytest.mark.parametrize(
    ("during", "start", "end", "hours"),
    [
        ("2026-03-29T05:00:00+02:00", "2026-03-28T06:00:00+01:00", "2026-03-29T06:00:00+02:00", 23),
        ("2026-10-25T05:00:00+01:00", "2026-10-24T06:00:00+02:00", "2026-10-25T06:00:00+01:00", 25),
        ("2026-10-25T07:00:00+01:00", "2026-10-25T06:00:00+01:00", "2026-10-26T06:00:00+01:00", 24),
    ],
)
def test_berlin_production_days(during: str, start: str, end: str, hours: int) -> None:
    cal = calendar("Europe/Berlin")
    day = cal.day_at(ms(during))
    assert local(cal, day) == (start, end)
    assert day.duration_ms == hours * H


def test_nonexistent_local_times_resolve_like_a_wall_clock() -> None:
    # 02:30 does not exist on 2026-03-29 in Berlin: the clock first reads 02:30 or later at 03:00 CEST.
    cal = PlantCalendar(
        ZoneInfo("Europe/Berlin"), [shift("a", "02:30", "10:00"), shift("b", "10:00", "02:30")], time(2, 30)
    )
    a = cal.shift_at(ms("2026-03-29T05:00:00+02:00"))
    assert a is not None and local(cal, a) == ("2026-03-29T03:00:00+02:00", "2026-03-29T10:00:00+02:00")
    b = cal.shift_at(ms("2026-03-29T02:59:59.999+02:00"))  # = 01:59:59.999 CET, just before the jump
    assert b is not None and local(cal, b) == ("2026-03-28T10:00:00+01:00", "2026-03-29T03:00:00+02:00")
    day = cal.day_at(ms("2026-03-29T12:00:00+02:00"))
    assert local(cal, day) == ("2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00")
    assert day.duration_ms == 23 * H + 30 * MIN


def test_ambiguous_local_times_take_the_first_occurrence() -> None:
    cal = PlantCalendar(
        ZoneInfo("Europe/Berlin"), [shift("a", "02:30", "10:00"), shift("b", "10:00", "02:30")], time(2, 30)
    )
    a = cal.shift_at(ms("2026-10-25T02:45:00+01:00"))  # the second 02:45 is already in shift a
    assert a is not None and a.shift == "a"
    assert local(cal, a) == ("2026-10-25T02:30:00+02:00", "2026-10-25T10:00:00+01:00")
    assert cal.day_at(a.start_ms).start_ms == a.start_ms


def test_shift_inside_a_dst_gap_does_not_happen_that_day() -> None:
    cal = PlantCalendar(ZoneInfo("Europe/Berlin"), [shift("ghost", "02:10", "02:40")], time(0))
    on_28th = cal.shift_at(ms("2026-03-28T02:20:00+01:00"))
    assert on_28th is not None and on_28th.duration_ms == 30 * MIN
    # On the 29th 02:10 and 02:40 both resolve to 03:00 CEST: the shift is empty and skipped.
    assert cal.next_shift_start(ms("2026-03-28T12:00:00+01:00")) == ms("2026-03-30T02:10:00+02:00")
    assert cal.shift_at(ms("2026-03-29T03:00:00+02:00")) is None


def test_kolkata_hours_are_not_utc_hours() -> None:
    cal = calendar("Asia/Kolkata")
    hour = cal.hour_at(ms("2026-01-01T00:00:00+00:00"))
    assert hour == WindowSpan("hour", ms("2025-12-31T23:30:00+00:00"), ms("2026-01-01T00:30:00+00:00"), None)
    assert local(cal, hour) == ("2026-01-01T05:00:00+05:30", "2026-01-01T06:00:00+05:30")


@pytest.mark.parametrize(
    ("zone", "first", "last", "starts", "minutes"),
    [
        # DST ends: 02:00 LHDT becomes 01:30 LHST, so 01:30-01:59 is shown twice.
        (
            "Australia/Lord_Howe",
            "2026-04-05T00:00:00+11:00",
            "2026-04-05T03:00:00+10:30",
            ["00:00:00+11:00", "01:00:00+11:00", "01:30:00+10:30", "02:00:00+10:30"],
            [60, 60, 30, 60],
        ),
        # DST starts: 02:00 LHST becomes 02:30 LHDT.
        (
            "Australia/Lord_Howe",
            "2026-10-04T00:00:00+10:30",
            "2026-10-04T04:00:00+11:00",
            ["00:00:00+10:30", "01:00:00+10:30", "02:30:00+11:00", "03:00:00+11:00"],
            [60, 60, 30, 60],
        ),
        # DST ends at 03:45 +13:45, which is not a whole local hour.
        (
            "Pacific/Chatham",
            "2026-04-05T02:00:00+13:45",
            "2026-04-05T04:00:00+12:45",
            ["02:00:00+13:45", "03:00:00+13:45", "02:45:00+12:45", "03:00:00+12:45"],
            [60, 45, 15, 60],
        ),
    ],
)
def test_transitions_that_are_not_whole_hours_shorten_hours(
    zone: str, first: str, last: str, starts: list[str], minutes: list[int]
) -> None:
    cal = calendar(zone)
    spans = hours_between(cal, ms(first), ms(last))
    assert [cal.local_isoformat(s.start_ms)[11:] for s in spans] == starts
    assert [s.duration_ms // MIN for s in spans] == minutes


def test_lord_howe_days_are_23_5_and_24_5_hours() -> None:
    cal = calendar("Australia/Lord_Howe", day_start=time(6))
    assert cal.day_at(ms("2026-04-05T05:00:00+10:30")).duration_ms == 24 * H + 30 * MIN
    assert cal.day_at(ms("2026-10-04T05:00:00+11:00")).duration_ms == 23 * H + 30 * MIN


# -- gaps and overlaps between shifts ----------------------------------------------------------


def test_unscheduled_time_between_shifts() -> None:
    cal = calendar("Asia/Seoul", [shift("day", "06:00", "14:00"), shift("swing", "15:00", "23:00")])
    assert cal.shift_at(ms("2026-11-25T14:00:00+09:00")) is None
    assert cal.shift_at(ms("2026-11-25T14:59:59.999+09:00")) is None
    assert cal.next_shift_start(ms("2026-11-25T14:30:00+09:00")) == ms("2026-11-25T15:00:00+09:00")
    swing = cal.shift_at(ms("2026-11-25T15:00:00+09:00"))
    assert swing is not None and swing.shift == "swing"
    assert cal.shift_at(ms("2026-11-26T03:00:00+09:00")) is None
    assert cal.next_shift_start(ms("2026-11-25T23:00:00+09:00")) == ms("2026-11-26T06:00:00+09:00")
    # A start exactly at ts is not "strictly after" it.
    assert cal.next_shift_start(ms("2026-11-26T06:00:00+09:00")) == ms("2026-11-26T15:00:00+09:00")


def test_overlapping_shifts_later_start_wins() -> None:
    handover = [shift("a", "06:00", "14:15"), shift("b", "14:00", "22:15"), shift("c", "22:00", "06:15")]
    cal = calendar("Asia/Seoul", handover)
    a = cal.shift_at(ms("2026-11-25T13:00:00+09:00"))
    assert a is not None and local(cal, a) == ("2026-11-25T06:00:00+09:00", "2026-11-25T14:00:00+09:00")
    b = cal.shift_at(ms("2026-11-25T14:10:00+09:00"))
    assert b is not None and b.shift == "b" and b.duration_ms == 8 * H
    c = cal.shift_at(ms("2026-11-26T06:05:00+09:00"))
    assert c is not None and c.shift == "a"  # c's overhang 06:00-06:15 belongs to a


@pytest.mark.parametrize(
    "shifts",
    [
        [shift("outer", "06:00", "22:00"), shift("inner", "10:00", "12:00")],
        [shift("outer", "22:00", "06:00"), shift("inner", "23:00", "01:00")],
        [shift("x", "06:00", "14:00"), shift("y", "06:00", "14:00")],
        [shift("x", "06:00", "14:00"), shift("y", "06:00", "10:00")],
    ],
)
def test_a_shift_inside_another_is_rejected(shifts: list[Shift]) -> None:
    with pytest.raises(ValueError, match="lies entirely within"):
        calendar("Asia/Seoul", shifts)


# -- formatting and memo -----------------------------------------------------------------------


def test_local_isoformat() -> None:
    seoul = calendar("Asia/Seoul")
    assert seoul.local_isoformat(ms("2026-11-24T21:00:00+00:00")) == "2026-11-25T06:00:00+09:00"
    assert seoul.local_isoformat(ms("2026-11-24T21:00:00.250+00:00")) == "2026-11-25T06:00:00.250+09:00"
    assert calendar("UTC").local_isoformat(-1) == "1969-12-31T23:59:59.999+00:00"
    # Berlin's local mean time was +00:53:28; RFC 3339 needs whole minutes, the instant must survive.
    berlin = calendar("Europe/Berlin")
    old = ms("1880-06-01T12:00:00+00:00")
    text = berlin.local_isoformat(old)
    assert text.endswith("+00:53")
    assert ms(text) == old


def test_memo_does_not_leak_between_queries() -> None:
    cal = calendar("Europe/Berlin")
    fresh = calendar("Europe/Berlin")
    times = [
        ms("2026-10-25T02:30:00+01:00"),
        ms("2026-10-25T02:30:00+02:00"),
        ms("2026-03-29T01:59:00+01:00"),
    ]
    for ts in [*times, *reversed(times), *times]:
        assert cal.hour_at(ts) == calendar("Europe/Berlin").hour_at(ts)
        assert cal.day_at(ts) == fresh.day_at(ts)
        assert cal.shift_at(ts) == calendar("Europe/Berlin").shift_at(ts)
        assert cal.next_shift_start(ts) == calendar("Europe/Berlin").next_shift_start(ts)
    gappy = calendar("Europe/Berlin", [shift("day", "06:00", "14:00"), shift("swing", "15:00", "23:00")])
    probes = [ms("2026-10-25T14:30+01:00"), ms("2026-10-25T10:00+01:00"), ms("2026-10-25T23:30+01:00")]
    for ts in [*probes, *reversed(probes), *probes]:
        reference = calendar("Europe/Berlin", list(gappy.shifts))
        assert gappy.shift_at(ts) == reference.shift_at(ts)
        assert gappy.next_shift_start(ts) == reference.next_shift_start(ts)


# -- properties against a minute-by-minute reference -------------------------------------------

# Zones with DST, half- and quarter-hour offsets, transitions at odd local times (St Johns before
# 2011: 00:01) and a skipped date (Apia, 2011-12-30).
ZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Seoul",
    "Asia/Kolkata",
    "Asia/Tehran",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/St_Johns",
    "Pacific/Apia",
)
# Zones whose every offset change between 1980 and 2100 is whole hours at a whole local hour: their
# hours are always exactly one hour and their days 23, 24 or 25 hours.
WHOLE_HOUR_ZONES = frozenset(
    {
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Asia/Seoul",
        "Asia/Kolkata",
        "Asia/Tehran",
        "Australia/Sydney",
    }
)
T_1980 = ms("1980-01-01T00:00:00+00:00")
T_2100 = ms("2100-01-01T00:00:00+00:00")
PROPERTY_SETTINGS = settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)


def offset_ms(zone: ZoneInfo, ts: int) -> int:
    offset = (EPOCH + timedelta(milliseconds=ts)).astimezone(zone).utcoffset()
    assert offset is not None
    return offset // timedelta(milliseconds=1)


def wall_ms(zone: ZoneInfo, ts: int) -> int:
    return ts + offset_ms(zone, ts)


_TRANSITIONS: dict[str, tuple[int, ...]] = {}


def transitions_near(zone_name: str) -> tuple[int, ...]:
    """Approximate offset changes (to the hour) in a few sample years, to aim examples at them."""
    if zone_name not in _TRANSITIONS:
        zone, found = ZoneInfo(zone_name), []
        for year in (1987, 2000, 2011, 2026, 2061):
            t = ms(f"{year}-01-01T00:00:00+00:00")
            previous = offset_ms(zone, t)
            for _ in range(366 * 24):
                t += H
                current = offset_ms(zone, t)
                if current != previous:
                    found.append(t)
                previous = current
        _TRANSITIONS[zone_name] = tuple(found) or (ms("2026-01-01T00:00:00+00:00"),)
    return _TRANSITIONS[zone_name]


def instants(zone_name: str) -> st.SearchStrategy[int]:
    anywhere = st.integers(T_1980, T_2100)
    near = st.sampled_from(transitions_near(zone_name)).flatmap(lambda t: st.integers(t - 30 * H, t + 30 * H))
    return st.one_of(anywhere, near)


zone_and_instant = st.sampled_from(ZONES).flatmap(lambda z: st.tuples(st.just(z), instants(z)))
clock_times = st.integers(0, 24 * 60 - 1).map(lambda m: time(m // 60, m % 60))
quarter_hours = st.integers(0, 24 * 4 - 1).map(lambda q: f"{q // 4:02d}:{q % 4 * 15:02d}")

_RESOLVED: dict[tuple[str, date, time], int] = {}


def ref_resolve(zone_name: str, day: date, clock: time) -> int:
    """The first whole minute at which the wall clock reads ``day clock`` or later, by scanning."""
    key = (zone_name, day, clock)
    if key not in _RESOLVED:
        zone = ZoneInfo(zone_name)
        x = (datetime.combine(day, clock) - NAIVE_EPOCH) // timedelta(milliseconds=1)
        offsets = {offset_ms(zone, x + k * H) for k in range(-40, 41)}
        t = x - max(offsets) - H
        assert wall_ms(zone, t) < x
        while wall_ms(zone, t) < x:
            t += MIN
        _RESOLVED[key] = t
    return _RESOLVED[key]


def ref_local_date(zone_name: str, ts: int) -> date:
    return (NAIVE_EPOCH + timedelta(milliseconds=wall_ms(ZoneInfo(zone_name), ts))).date()


def ref_hour(zone_name: str, ts: int) -> tuple[int, int]:
    """Hour bounds: every whole minute where the clock shows :00 or its offset changes is one."""
    zone = ZoneInfo(zone_name)
    first = ts - ts % MIN - 2 * H
    bounds = [
        t
        for t in range(first, first + 4 * H + MIN, MIN)
        if wall_ms(zone, t) % H == 0 or offset_ms(zone, t) != offset_ms(zone, t - MIN)
    ]
    return max(b for b in bounds if b <= ts), min(b for b in bounds if b > ts)


def ref_shift(
    zone_name: str, shifts: list[Shift], ts: int, holidays: frozenset[date] = frozenset(), reach: int = 3
) -> tuple[str, int, int] | None:
    """The latest-starting occurrence at or before ts owns it if it has not ended; cut at the next start."""
    around = ref_local_date(zone_name, ts)
    occurrences = []
    for k in range(-reach, reach):
        day = around + timedelta(days=k)
        for s in shifts:
            if day in holidays or (s.days is not None and day.strftime("%a").lower() not in s.days):
                continue
            end_day = day + timedelta(days=1) if s.crosses_midnight else day
            start = ref_resolve(zone_name, day, s.start)
            end = ref_resolve(zone_name, end_day, s.end)
            occurrences.append((start, datetime.combine(day, s.start), end, s.name))
    occurrences.sort()
    started = [i for i, o in enumerate(occurrences) if o[0] <= ts]
    if not started:
        return None
    start, _, end, name = occurrences[started[-1]]
    if started[-1] + 1 < len(occurrences):
        end = min(end, occurrences[started[-1] + 1][0])
    return (name, start, end) if end > ts else None


@PROPERTY_SETTINGS
@given(zone_and_instant)
def test_hour_matches_reference_and_tiles(case: tuple[str, int]) -> None:
    zone_name, ts = case
    cal = calendar(zone_name)
    span = cal.hour_at(ts)
    assert (span.start_ms, span.end_ms) == ref_hour(zone_name, ts)
    assert span.start_ms <= ts < span.end_ms
    assert 0 < span.duration_ms <= H
    if zone_name in WHOLE_HOUR_ZONES:
        assert span.duration_ms == H
        assert cal.local_isoformat(span.start_ms)[13:19] == ":00:00"
    assert calendar(zone_name).hour_at(span.end_ms).start_ms == span.end_ms
    assert calendar(zone_name).hour_at(span.start_ms - 1).end_ms == span.start_ms


@PROPERTY_SETTINGS
@given(zone_and_instant, st.integers(1, 3 * 24 * H))
def test_hours_tile_a_range(case: tuple[str, int], length: int) -> None:
    zone_name, ts = case
    cal = calendar(zone_name)
    spans = hours_between(cal, ts, ts + length)
    assert spans[0].start_ms <= ts
    for before, after in itertools.pairwise(spans):
        assert before.end_ms == after.start_ms
        assert before.duration_ms > 0


@PROPERTY_SETTINGS
@given(zone_and_instant, clock_times)
def test_days_match_reference_and_tile(case: tuple[str, int], day_start: time) -> None:
    zone_name, ts = case
    zone = ZoneInfo(zone_name)
    cal = calendar(zone_name, day_start=day_start)
    span = cal.day_at(ts)
    assert span.start_ms <= ts < span.end_ms
    around = ref_local_date(zone_name, ts)
    bounds = [ref_resolve(zone_name, around + timedelta(days=k), day_start) for k in range(-2, 3)]
    assert (span.start_ms, span.end_ms) == (
        max(b for b in bounds if b <= ts),
        min(b for b in bounds if b > ts),
    )
    assert cal.day_at(span.end_ms).start_ms == span.end_ms
    assert cal.day_at(span.start_ms - 1).end_ms == span.start_ms
    exact = all(
        (NAIVE_EPOCH + timedelta(milliseconds=wall_ms(zone, b))).time() == day_start
        for b in (span.start_ms, span.end_ms)
    )
    if exact:
        # A day is the local time between its bounds (24 h, or 48 h where a date was skipped) less
        # whatever the clock was put forward in between.
        local_span = wall_ms(zone, span.end_ms) - wall_ms(zone, span.start_ms)
        change = offset_ms(zone, span.end_ms) - offset_ms(zone, span.start_ms)
        assert local_span == 24 * H or zone_name == "Pacific/Apia"
        assert span.duration_ms == local_span - change
        if zone_name in WHOLE_HOUR_ZONES:
            assert span.duration_ms in {23 * H, 24 * H, 25 * H}
    if zone_name != "Pacific/Apia":
        assert 22 * H <= span.duration_ms <= 26 * H


@st.composite
def shift_plans(draw: st.DrawFn) -> list[Shift]:
    count = draw(st.integers(1, 4))
    plan = []
    for i in range(count):
        start, end = draw(quarter_hours), draw(quarter_hours)
        assume(start != end)
        plan.append(shift(f"s{i}", start, end))
    return plan


@PROPERTY_SETTINGS
@given(zone_and_instant, shift_plans())
def test_shifts_match_reference_and_tile(case: tuple[str, int], plan: list[Shift]) -> None:
    zone_name, ts = case
    try:
        cal = calendar(zone_name, plan)
    except ValueError:
        assume(False)  # a shift inside another is rejected; covered by a hand-worked test
        raise
    t, until, previous_end = ts, ts + 2 * 24 * H, None
    while t < until:
        span = cal.shift_at(t)
        expected = ref_shift(zone_name, plan, t)
        if span is None:
            assert expected is None
            following = cal.next_shift_start(t)
            assert following is not None and following > t
            if following - 1 > t:
                assert cal.shift_at(following - 1) is None
                assert cal.shift_at((t + following) // 2) is None
            nxt = cal.shift_at(following)
            assert nxt is not None and nxt.start_ms == following
            t = following
        else:
            assert expected == (span.shift, span.start_ms, span.end_ms)
            assert span.kind == "shift" and span.start_ms <= t < span.end_ms
            assert previous_end is None or span.start_ms >= previous_end  # no overlap with the last one
            following = cal.next_shift_start(span.start_ms)
            assert following is not None and following >= span.end_ms
            mid = (span.start_ms + span.end_ms) // 2
            assert cal.shift_at(mid) == span
            assert cal.next_shift_start(mid) == following
            previous_end, t = span.end_ms, span.end_ms


# -- working days and holidays ------------------------------------------------------------------

WEEKDAY_SHIFTS = [
    Shift(name="early", start="06:00", end="14:00", days=("mon", "tue", "wed", "thu", "fri")),
    Shift(name="night", start="22:00", end="06:00", days=("mon", "tue", "wed", "thu", "fri")),
]


def test_a_weekend_without_shifts_is_unscheduled_and_friday_night_ends_on_saturday() -> None:
    cal = PlantCalendar(ZoneInfo("Europe/Berlin"), WEEKDAY_SHIFTS, time(6))
    friday_night = cal.shift_at(ms("2026-10-24T03:00:00+02:00"))  # Saturday 03:00: Friday's night shift
    assert friday_night is not None and friday_night.shift == "night"
    assert local(cal, friday_night) == ("2026-10-23T22:00:00+02:00", "2026-10-24T06:00:00+02:00")
    for during in ("2026-10-24T06:00:00+02:00", "2026-10-24T23:00:00+02:00", "2026-10-25T12:00:00+01:00"):
        assert cal.shift_at(ms(during)) is None, during
    monday = ms("2026-10-26T06:00:00+01:00")
    assert cal.next_shift_start(ms("2026-10-24T07:00:00+02:00")) == monday
    assert cal.scheduled_spans(ms("2026-10-23T20:00:00+02:00"), ms("2026-10-26T07:00:00+01:00")) == [
        (ms("2026-10-23T20:00:00+02:00"), ms("2026-10-23T22:00:00+02:00"), False),
        (ms("2026-10-23T22:00:00+02:00"), ms("2026-10-24T06:00:00+02:00"), True),
        (ms("2026-10-24T06:00:00+02:00"), monday, False),
        (monday, ms("2026-10-26T07:00:00+01:00"), True),
    ]


def test_no_shift_starts_on_a_holiday() -> None:
    holidays = [date(2026, 12, 24), date(2026, 12, 25)]
    cal = PlantCalendar(ZoneInfo("Europe/Berlin"), WEEKDAY_SHIFTS, time(6), holidays)
    night = cal.shift_at(ms("2026-12-24T02:00:00+01:00"))  # Wednesday's night shift ends as usual
    assert night is not None and local(cal, night) == (
        "2026-12-23T22:00:00+01:00",
        "2026-12-24T06:00:00+01:00",
    )
    assert cal.shift_at(ms("2026-12-24T10:00:00+01:00")) is None
    assert cal.shift_at(ms("2026-12-25T23:00:00+01:00")) is None
    # Friday the 25th and the weekend: the next start is Monday the 28th.
    assert cal.next_shift_start(ms("2026-12-24T06:00:00+01:00")) == ms("2026-12-28T06:00:00+01:00")


def test_shifts_on_other_days_may_cover_the_same_hours() -> None:
    weekend = Shift(name="weekend", start="06:00", end="18:00", days=("sat", "sun"))
    cal = PlantCalendar(ZoneInfo("Asia/Seoul"), [WEEKDAY_SHIFTS[0], weekend], time(6))
    saturday = cal.shift_at(ms("2026-11-28T12:00:00+09:00"))
    assert saturday is not None and saturday.shift == "weekend"
    friday = cal.shift_at(ms("2026-11-27T12:00:00+09:00"))
    assert friday is not None and friday.shift == "early"
    with pytest.raises(ValueError, match="lies entirely within"):
        PlantCalendar(
            ZoneInfo("Asia/Seoul"), [WEEKDAY_SHIFTS[0], weekend.model_copy(update={"days": None})], time(6)
        )
    # A Friday night shift containing a Saturday-only early shift is still one inside another.
    fri_night = Shift(name="fri_night", start="22:00", end="06:00", days=("fri",))
    sat_early = Shift(name="sat_early", start="00:00", end="05:00", days=("sat",))
    with pytest.raises(ValueError, match="'sat_early' lies entirely within shift 'fri_night'"):
        PlantCalendar(ZoneInfo("Asia/Seoul"), [fri_night, sat_early], time(6))


@pytest.mark.parametrize(
    ("days", "error"),
    [([], "at least 1 item"), (["mon", "mon"], "listed twice"), (["funday"], "Input should be 'mon'")],
)
def test_bad_days_are_refused_naming_the_field(days: list[str], error: str) -> None:
    plant = {
        "timezone": "Europe/Berlin",
        "shifts": [{"name": "early", "start": "06:00", "end": "14:00", "days": days}],
        "machines": [{"tenant": "acme", "site": "p1", "line": "L1", "id": "M01", "ideal_cycle_s": 12.0}],
    }
    with pytest.raises(ValueError, match=error) as raised:
        PlantConfig.model_validate(plant)
    assert "shifts.0.days" in str(raised.value)


def test_a_plant_without_days_or_holidays_keeps_its_version() -> None:
    """Records name the configuration by this hash: an upgrade that adds optional keys must not
    change it for an unchanged plant file (c86caa17610a is what earlier versions computed)."""
    plant = PlantConfig.model_validate(
        {
            "timezone": "Europe/Berlin",
            "shifts": [
                {"name": "early", "start": "06:00", "end": "14:00"},
                {"name": "night", "start": "22:00", "end": "06:00"},
            ],
            "machines": [{"tenant": "acme", "site": "p1", "line": "L1", "id": "M01", "ideal_cycle_s": 12.0}],
        }
    )
    assert plant.version == "c86caa17610a"
    with_days = plant.model_copy(
        update={"shifts": [s.model_copy(update={"days": ("mon",)}) for s in plant.shifts]}
    )
    assert with_days.version != plant.version
    assert plant.model_copy(update={"max_signals_per_machine": 300}).version != plant.version
    assert plant.model_copy(update={"max_characteristics_per_machine": 300}).version != plant.version


weekday_sets = st.sets(st.sampled_from(("mon", "tue", "wed", "thu", "fri", "sat", "sun")), min_size=1).map(
    lambda days: tuple(sorted(days))
)


@PROPERTY_SETTINGS
@given(
    st.sampled_from(("Europe/Berlin", "Asia/Seoul", "America/New_York")).flatmap(
        lambda z: st.tuples(st.just(z), instants(z))
    ),
    shift_plans(),
    st.lists(st.one_of(st.none(), weekday_sets), min_size=4, max_size=4),
    st.sets(st.integers(-6, 6), max_size=4),
)
def test_shifts_with_days_and_holidays_match_reference(
    case: tuple[str, int], plan: list[Shift], days: list[tuple[str, ...] | None], holiday_offsets: set[int]
) -> None:
    zone_name, ts = case
    plan = [s.model_copy(update={"days": d}) for s, d in zip(plan, days, strict=False)]
    around = ref_local_date(zone_name, ts)
    holidays = frozenset(around + timedelta(days=k) for k in holiday_offsets)
    try:
        cal = PlantCalendar(ZoneInfo(zone_name), plan, time(6), holidays)
    except ValueError:
        assume(False)
        raise
    t, until = ts, ts + 3 * 24 * H
    while t < until:
        span = cal.shift_at(t)
        got = None if span is None else (span.shift, span.start_ms, span.end_ms)
        assert got == ref_shift(zone_name, plan, t, holidays, reach=12)
        following = cal.next_shift_start(t)
        if span is None:
            if following is None or following > until:
                break
            assert cal.shift_at(following) is not None
            t = following
        else:
            t = span.end_ms


# -- UTC offsets of a batch of readings -----------------------------------------------------------------


def _offset_runs_one_by_one(cal: PlantCalendar, times: list[int]) -> list[tuple[int, int, int]]:
    """The reference: each reading's own offset, consecutive equal ones grouped."""
    runs: list[tuple[int, int, int]] = []
    for index, ts in enumerate(times):
        offset = cal.utc_offset_ms(ts)
        if runs and runs[-1][2] == offset:
            runs[-1] = (runs[-1][0], index + 1, offset)
        else:
            runs.append((index, index + 1, offset))
    return runs


@pytest.mark.parametrize(
    ("zone", "change"),
    [
        ("Europe/Berlin", "2026-03-29T01:00:00+00:00"),  # 02:00 -> 03:00, on a UTC hour
        ("Europe/Berlin", "2026-10-25T01:00:00+00:00"),  # 03:00 -> 02:00
        ("America/St_Johns", "2026-03-08T05:30:00+00:00"),  # 02:00 -> 03:00 at -03:30: mid UTC hour
        ("Australia/Lord_Howe", "2026-04-04T15:00:00+00:00"),  # 02:00 -> 01:30: a 30-minute change
        ("Asia/Kathmandu", "2026-06-01T00:00:00+00:00"),  # +05:45, no change: one run
    ],
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.integers(-3 * H, 3 * H), min_size=1, max_size=40),
    st.integers(0, 3),
)
def test_utc_offset_runs_place_each_reading_by_its_own_offset(
    zone: str, change: str, around: list[int], spread: int
) -> None:
    """A batch of readings around a change of the clocks (spread: up to ~3 days either side) is cut
    exactly where the offset changes, even inside a UTC hour."""
    cal = calendar(zone)
    at = int(datetime.fromisoformat(change).timestamp() * 1000)
    times = sorted(at + ms * (1 + 24 * spread) for ms in around)
    array = np.array(times, dtype=np.int64)
    assert cal.utc_offset_runs(array) == _offset_runs_one_by_one(cal, times)
    assert cal.utc_offset_runs(array) == _offset_runs_one_by_one(cal, times)  # from its memo too


def test_utc_offset_runs_of_no_readings_and_of_a_batch_over_months() -> None:
    cal = calendar("Europe/Berlin")
    assert cal.utc_offset_runs(np.empty(0, dtype=np.int64)) == []
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    times = [start + k * 6 * H for k in range(4 * 4 * 365)]  # every 6 h through 2026-2029
    runs = cal.utc_offset_runs(np.array(times, dtype=np.int64))
    assert runs == _offset_runs_one_by_one(cal, times)
    assert len(runs) == 8 + 1  # two changes a year
