"""The numba time-model kernel matches the pure-Python reference on random event streams.

The same in-order stream goes through :class:`~models.time_ledger.LedgerAccounting` (the kernel)
and :class:`~models.accounting_reference.ReferenceAccounting`. After every event both must have
closed the same windows with the same totals, in the same order, and at the end both must hold
the same open and closing windows and the same machine clocks. Plants vary: with and without
shifts (gaps between them included), micro-stops and startup, in a zone with DST changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from models.accounting_reference import ReferenceAccounting, ReferenceLedger
from models.calendar import PlantCalendar
from models.event_rank import RANK_COUNT, RANK_CYCLE, RANK_HEARTBEAT, RANK_STATE, RANK_TICK, RANK_TOO_LATE
from models.ledger_accounting import LedgerAccounting
from models.plant import PlantConfig
from models.time_ledger import TimeLedger, ledger_from_parts

ZONE = "Europe/Berlin"
# Two days before the spring-forward night of 2026 (29 March): streams of up to ~60 h cross it.
START_MS = int(datetime(2026, 3, 27, 5, 0, tzinfo=ZoneInfo(ZONE)).timestamp() * 1000)
SHIFTS = [
    {"name": "early", "start": "06:00", "end": "14:00"},
    {"name": "late", "start": "14:00", "end": "22:00"},
]  # nights are unscheduled: only production counts there


def plant(shifts: bool, micro_stop_s: int | None, startup_s: int | None) -> PlantConfig:
    return PlantConfig.model_validate(
        {
            "timezone": ZONE,
            "shifts": SHIFTS if shifts else [],
            "machines": [
                {
                    "tenant": "acme",
                    "site": "p1",
                    "line": "L1",
                    "id": "M01",
                    "products": {"A": 10.0, "B": 30.0},
                },
            ],
            "losses": [
                {"state": "idle", "reason": "micro_stop", "category": "performance"},
                {"state": "idle", "reason": "no_material", "category": "availability"},
                {
                    "state": "down",
                    "reason": "changeover",
                    "category": "availability",
                    "big_loss": "setup_adjustments",
                },
            ],
            "micro_stop_s": micro_stop_s,
            "startup_s": startup_s,
            "state_timeout_s": 900,
        }
    )


states = st.tuples(
    st.sampled_from(["running", "running", "idle", "down", "setup", "planned_stop", "offline"]),
    st.sampled_from([None, "jam", "micro_stop", "no_material", "changeover"]),
)
# A too-late event is applied at the cursor with its own time (older, or any time here) as one more
# value: the machine was seen then. A too-late count stored before that carries none.
own_times = st.integers(START_MS - 3_600_000, START_MS + 60 * 3_600_000)
steps = st.one_of(
    st.tuples(st.just(RANK_STATE), states),
    st.tuples(st.just(RANK_STATE), st.tuples(states, own_times).map(lambda pair: (*pair[0], pair[1]))),
    st.tuples(
        st.just(RANK_COUNT),
        st.tuples(
            st.integers(0, 30),
            st.integers(0, 3),
            st.sampled_from([None, "A", "B", "C"]),  # C has no ideal cycle
            st.sampled_from([None, "burr", "crack"]),
        ),
    ),
    st.tuples(st.just(RANK_CYCLE), st.tuples(st.floats(5.0, 60.0), st.sampled_from([None, "A", "B"]))),
    st.tuples(st.just(RANK_HEARTBEAT), st.just(())),
    st.tuples(st.just(RANK_TOO_LATE), st.one_of(st.just(()), st.tuples(own_times))),
    st.tuples(st.just(RANK_TICK), st.just(())),
)
gaps = st.one_of(st.integers(0, 120_000), st.integers(0, 3_600_000), st.integers(0, 4 * 3_600_000))
streams = st.lists(st.tuples(gaps, steps), min_size=1, max_size=120)
plants = st.builds(
    plant,
    shifts=st.booleans(),
    micro_stop_s=st.sampled_from([None, 60, 300]),
    startup_s=st.sampled_from([None, 600]),
)


def timeline(stream: list[tuple[int, tuple[int, tuple[Any, ...]]]]) -> list[tuple[int, int, tuple[Any, ...]]]:
    events = []
    ts = START_MS + 17_000  # first seen mid-window: the part before is lost coverage
    for gap, (rank, values) in stream:
        ts += gap
        events.append((ts, rank, values))
    return events


def clocks_of_reference(ledger: ReferenceLedger) -> dict[str, Any]:
    return {
        "cursor_ms": ledger.cursor_ms,
        "last_seen_ms": ledger.last_seen_ms,
        "state": ledger.state,
        "reason": ledger.reason,
        "state_since_ms": ledger.state_since_ms,
        "state_reported_ms": ledger.state_reported_ms,
        "stop_since_ms": ledger.stop_since_ms,
        "stop_settled": ledger.stop_settled,
        "pending_stop_ms": ledger.pending_stop_ms,
        "startup_until_ms": ledger.startup_until_ms,
        "run_ms": ledger.run_ms,
        "late_events": ledger.late_events,
    }


def clocks_of_kernel(ledger: TimeLedger) -> dict[str, Any]:
    parts = ledger.to_parts()
    return {name: parts[name] for name in clocks_of_reference(ReferenceLedger())}


@settings(max_examples=300, deadline=None)
@given(plants, streams)
def test_kernel_matches_the_reference_event_by_event(config: PlantConfig, stream: list[Any]) -> None:
    spec = config.machines[0]
    calendar = PlantCalendar.from_plant(config)
    reference, kernel = ReferenceAccounting(config, calendar), LedgerAccounting(config, calendar)
    expected_ledger, ledger = ReferenceLedger(), TimeLedger()
    for ts_ms, rank, values in timeline(stream):
        expected = [w.to_dict() for w in reference.apply(expected_ledger, spec, ts_ms, rank, values)]
        got = [w.to_dict() for w in kernel.apply(ledger, spec, ts_ms, rank, values)]
        assert got == expected
    assert {kind: w.to_dict() for kind, w in ledger.windows().items()} == {
        kind: w.to_dict() for kind, w in expected_ledger.windows.items()
    }
    assert [w.to_dict() for w in ledger.closing()] == [w.to_dict() for w in expected_ledger.closing]
    assert clocks_of_kernel(ledger) == clocks_of_reference(expected_ledger)


@settings(max_examples=150, deadline=None)
@given(plants, streams, st.integers(0, 119))
def test_a_batch_and_a_stored_and_reloaded_ledger_give_the_same_result(
    config: PlantConfig, stream: list[Any], cut: int
) -> None:
    """``apply_many`` (one kernel run between window rolls) equals event by event, and a ledger
    saved to its table form and loaded halfway (a worker restart) carries on identically."""
    spec = config.machines[0]
    calendar = PlantCalendar.from_plant(config)
    kernel = LedgerAccounting(config, calendar)
    events = timeline(stream)
    one_by_one, batched = TimeLedger(), TimeLedger()
    expected = [w.to_dict() for event in events for w in kernel.apply(one_by_one, spec, *event)]
    cut = min(cut, len(events))
    closed = kernel.apply_many(batched, spec, events[:cut])
    reloaded = ledger_from_parts(batched.to_parts())
    closed += LedgerAccounting(config, calendar).apply_many(reloaded, spec, events[cut:])
    assert [w.to_dict() for w in closed] == expected
    assert reloaded.to_parts() == one_by_one.to_parts()


def test_a_stop_longer_than_the_micro_stop_threshold_by_hand() -> None:
    """Hand-computed through the kernel: 10 min running, a 90 s jam (a small stop), 20 min
    running, a 10 min breakdown (availability), then running to the end of the hour."""
    config = plant(shifts=False, micro_stop_s=120, startup_s=None)
    spec = config.machines[0]
    kernel = LedgerAccounting(config, PlantCalendar.from_plant(config))
    ledger = TimeLedger()
    hour = int(datetime(2026, 3, 27, 8, 0, tzinfo=ZoneInfo(ZONE)).timestamp() * 1000)
    minute = 60_000
    for ts_ms, rank, values in [
        (hour, RANK_STATE, ("running", None)),
        (hour + 10 * minute, RANK_STATE, ("down", "jam")),
        (hour + 11 * minute + 30_000, RANK_STATE, ("running", None)),
        (hour + 21 * minute, RANK_HEARTBEAT, ()),  # within state_timeout_s: running is believed
        (hour + 31 * minute + 30_000, RANK_STATE, ("down", "motor")),
        (hour + 41 * minute + 30_000, RANK_STATE, ("running", None)),
    ]:
        assert kernel.apply(ledger, spec, ts_ms, rank, values) == []
    kernel.apply(ledger, spec, hour + 55 * minute, RANK_HEARTBEAT, ())
    [closed] = kernel.apply(ledger, spec, hour + 60 * minute, RANK_HEARTBEAT, ())
    figures = closed.figures()
    assert closed.kind == "hour" and closed.start_ms == hour
    assert figures.availability_loss_s == 600  # the breakdown
    assert figures.run_s == 3000  # running plus the 90 s small stop inside APT
    assert figures.big_losses_s["small_stops"] == 90
    assert figures.big_losses_s["unplanned_stops"] == 600
    assert figures.micro_stops == 1 and figures.failures == 1
    assert figures.losses_s == {"down/jam": 90.0, "down/motor": 600.0}
