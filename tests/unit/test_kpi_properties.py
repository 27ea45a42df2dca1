"""Properties of the time model over random event streams (hypothesis).

- ratios lie in [0, 1] where they are defined, and OEE is exactly A x P x Q;
- the hours of a shift merged give the shift's totals (splitting and merging windows is exact);
- the arrival order of events within the allowed lateness does not change any window's final record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.machine import MachineEngine
from models.plant import PlantConfig
from models.timemodel import WindowAccumulator, WindowFigures

LATENESS_S = 600
START_MS = int(datetime(2026, 11, 25, 6, 0, tzinfo=ZoneInfo("Asia/Seoul")).timestamp() * 1000)
PLANT = PlantConfig.model_validate(
    {
        "timezone": "Asia/Seoul",
        "shifts": [
            {"name": "day", "start": "06:00", "end": "14:00"},
            {"name": "swing", "start": "14:00", "end": "22:00"},
            {"name": "night", "start": "22:00", "end": "06:00"},
        ],
        "machines": [
            {
                "tenant": "acme",
                "site": "p1",
                "line": "L1",
                "id": "M01",
                "ideal_cycle_s": 12.0,
                "products": {"A": 10.0, "B": 30.0},
            },
        ],
        "losses": [{"state": "idle", "reason": "micro_stop", "category": "performance"}],
        "micro_stop_s": 60,
        "startup_s": 300,
        "allowed_lateness_s": LATENESS_S,
        "state_timeout_s": 900,
        "alerts": {"oee_below": 0.5},
    }
)
SPEC = PLANT.machines[0]


@dataclass(frozen=True)
class Event:
    ts_ms: int
    kind: str
    args: tuple[Any, ...]


states = st.tuples(
    st.sampled_from(["running", "running", "idle", "down", "setup", "planned_stop"]),
    st.sampled_from([None, "jam", "micro_stop", "motor"]),
)
steps = st.one_of(
    st.tuples(st.just("state"), states),
    st.tuples(
        st.just("count"),
        st.tuples(st.integers(0, 30), st.integers(0, 3), st.sampled_from([None, "A", "B", "C"])),
    ),
    st.tuples(st.just("cycle"), st.tuples(st.floats(5.0, 60.0), st.sampled_from([None, "A", "B"]))),
)
# Gaps: mostly seconds to minutes (micro-stops, late events that land in closed windows), some up to
# an hour (state timeouts, many window ends), so most streams run past a shift's end.
gaps = st.one_of(st.integers(0, 180_000), st.integers(0, 3_600_000))
streams = st.lists(st.tuples(gaps, steps), min_size=30, max_size=150)


def build(stream: list[tuple[int, tuple[str, tuple[Any, ...]]]]) -> list[Event]:
    events = [Event(START_MS, "state", ("running", None))]
    ts = START_MS
    for gap, (kind, args) in stream:
        ts += gap
        events.append(Event(ts, kind, args))
    # Every stream runs past the end of the first shift, so there is a shift to check.
    events.append(Event(max(ts, START_MS + 8 * 3_600_000) + 1000, "count", (0, 0, None)))
    return events


@dataclass
class Run:
    final: dict[tuple[str, int], WindowAccumulator]  # the highest revision of every closed window
    revisions: dict[tuple[str, int], int]
    open_windows: list[dict[str, Any]]
    too_late: int


def run(events: list[Event]) -> Run:
    engine = MachineEngine(PLANT)
    state = engine.new_state(SPEC)
    result = Run({}, {}, [], 0)
    for event in events:
        if event.kind == "state":
            out = engine.on_state(state, SPEC, event.ts_ms, *event.args)
        elif event.kind == "count":
            good, scrap, product = event.args
            out = engine.on_count(state, SPEC, event.ts_ms, good, scrap, product, "burr" if scrap else None)
        else:
            out = engine.on_cycle(state, SPEC, event.ts_ms, *event.args)
        result.too_late += int(out.too_late)
        for closed in out.closed:
            key = (closed.window.kind, closed.window.start_ms)
            assert closed.revision == result.revisions.get(key, -1) + 1, "revisions count up from 0"
            result.revisions[key] = closed.revision
            result.final[key] = closed.window
    result.open_windows = [window.to_dict() for window in (*state.windows.values(), *state.closing)]
    return result


def check_ratios(figures: WindowFigures) -> None:
    for name in (
        "availability",
        "performance",
        "quality",
        "oee",
        "coverage",
        "teep",
        "scrap_ratio",
        "setup_ratio",
    ):
        value = getattr(figures, name)
        assert value is None or 0.0 <= value <= 1.0, (name, value)
    if figures.oee is not None:
        assert figures.oee == figures.availability * figures.performance * figures.quality  # type: ignore[operator]
    else:
        assert None in (figures.availability, figures.performance, figures.quality)


@settings(max_examples=150, deadline=None)
@given(streams)
def test_ratios_are_ratios_and_oee_is_their_product(
    stream: list[tuple[int, tuple[str, tuple[Any, ...]]]],
) -> None:
    for window in run(build(stream)).final.values():
        figures = window.figures()
        check_ratios(figures)
        assert figures.planned_s == pytest.approx(figures.run_s + figures.availability_loss_s, abs=1e-9)
        assert window.good + window.scrap >= window.startup_scrap


@settings(max_examples=100, deadline=None)
@given(streams)
def test_the_hours_of_a_shift_merge_into_the_shift(
    stream: list[tuple[int, tuple[str, tuple[Any, ...]]]],
) -> None:
    final = run(build(stream)).final
    for (kind, start), shift in final.items():
        if kind != "shift":
            continue
        hours = [
            window for (k, s), window in sorted(final.items()) if k == "hour" and start <= s < shift.end_ms
        ]
        assert len(hours) == 8
        merged = WindowAccumulator.from_dict({**hours[0].to_dict(), "cycle_products": {}})
        merged.cycle_products = {}
        for product, stats in hours[0].cycle_products.items():
            merged.cycle_products[product] = type(stats).from_dict(stats.to_dict())
        for hour in hours[1:]:
            merged.merge(hour)
        assert (merged.start_ms, merged.end_ms) == (shift.start_ms, shift.end_ms)
        for name in ("category_ms", "unscheduled_ms", "loss_ms", "good", "scrap", "failures", "micro_stops",
                     "cycles", "scrap_by_reason", "startup_scrap", "units_without_ideal"):  # fmt: skip
            assert getattr(merged, name) == getattr(shift, name), name
        expected, actual = shift.figures(), merged.figures()
        for name in ("availability", "performance", "quality", "oee", "coverage", "teep"):
            value = getattr(expected, name)
            assert getattr(actual, name) == (None if value is None else pytest.approx(value, rel=1e-9)), name
        for product, stats in shift.cycle_products.items():
            assert merged.cycle_products[product].count == stats.count


@st.composite
def reordered(draw: st.DrawFn) -> tuple[list[Event], list[Event]]:
    """Events in time order, and the same events as they might arrive: each delayed by less than the
    allowed lateness, so none is older than the newest one before it by more than that."""
    events = build(draw(streams))
    delays = draw(st.lists(st.integers(0, LATENESS_S * 1000 - 1), min_size=len(events), max_size=len(events)))
    arrival = sorted(range(len(events)), key=lambda index: (events[index].ts_ms + delays[index], index))
    return events, [events[index] for index in arrival]


@settings(max_examples=150, deadline=None)
@given(reordered())
def test_order_within_the_allowed_lateness_does_not_change_the_result(
    orders: tuple[list[Event], list[Event]],
) -> None:
    in_order, shuffled = orders
    expected, actual = run(in_order), run(shuffled)
    assert actual.too_late == 0 and expected.too_late == 0
    assert actual.final.keys() == expected.final.keys()
    for key, window in expected.final.items():
        assert actual.final[key].to_dict() == window.to_dict(), key
    assert actual.open_windows == expected.open_windows
