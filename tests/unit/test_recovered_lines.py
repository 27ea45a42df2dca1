"""Lines shown again after a restart or rebalance: the worker clears its lines when partitions are
revoked, and the lines of the state it recovers are shown from the newest records that state keeps
(:func:`streams.line_stream.show_recovered_lines`), exactly as before the revoke.

Found in an audit on Apache Kafka, 2026-11-27: the line series vanished from /metrics after every
rebalance, deploy or restart until the line's next record (up to a day for the day window).
"""

from __future__ import annotations

from typing import Any

import orjson

from models.plant import PlantConfig
from streams.line_stream import show_recovered_lines
from streams.lines import LineAggregator, line_key, newest_records
from streams.live import LiveLines

HOUR_MS = 3_600_000
START_MS = 1_764_018_000_000  # 2026-11-25T06:00:00+09:00
PLANT = PlantConfig.model_validate(
    {
        "timezone": "Asia/Seoul",
        "machines": [
            {"tenant": "acme", "site": "p1", "line": line, "id": machine, "ideal_cycle_s": 10.0}
            for line, machines in (("L1", ("M01", "M02")), ("L2", ("M03",)))
            for machine in machines
        ],
    }
)


def kpi(
    machine: str, line: str, window: str, start_ms: int, *, revision: int = 0, good: int = 100
) -> dict[str, Any]:
    span_ms = {"hour": HOUR_MS, "shift": 8 * HOUR_MS, "day": 24 * HOUR_MS}[window]
    planned = span_ms / 1000
    return {
        "tenant": "acme", "site": "p1", "line": line, "machine": machine, "window": window,
        "shift": "A" if window == "shift" else None,
        "start": f"start-{start_ms}", "end": f"end-{start_ms + span_ms}",
        "start_ms": start_ms, "end_ms": start_ms + span_ms, "complete": True, "revision": revision,
        "planned_s": planned, "run_s": planned * 0.8, "performance": 0.9, "oee": 0.8 * 0.9 * 0.95,
        "good": good, "scrap": 3,
        "big_losses_s": {"unplanned_stops": planned * 0.2, "setup_adjustments": 0.0},
        "losses_s": {"down/motor": planned * 0.2},
        "top_losses": [{"state": "down", "reason": "motor", "category": "availability",
                        "big_loss": "unplanned_stops", "seconds": planned * 0.2}],
    }  # fmt: skip


# Two hours, a shift and a day of L1 (M02's first hour arriving late, then revised), one hour of L2.
STREAM = [
    kpi("M01", "L1", "hour", START_MS),
    kpi("M01", "L1", "hour", START_MS + HOUR_MS),
    kpi("M02", "L1", "hour", START_MS),  # an older window: the newest hour stays START_MS + 1 h
    kpi("M02", "L1", "hour", START_MS + HOUR_MS),
    kpi("M02", "L1", "hour", START_MS + HOUR_MS, revision=1, good=120),
    kpi("M01", "L1", "shift", START_MS),
    kpi("M01", "L1", "day", START_MS),
    kpi("M02", "L1", "day", START_MS),
    kpi("M03", "L2", "hour", START_MS),
]


def fold(aggregator: LineAggregator, live: LiveLines, records: list[dict[str, Any]]) -> dict[bytes, bytes]:
    """What the agent does: each emitted record shown, each state stored as JSON in the table."""
    table: dict[bytes, bytes] = {}
    for record in records:
        key = line_key(record)
        stored = table.get(key)
        state, line_record = aggregator.apply(None if stored is None else orjson.loads(stored), record)
        if line_record is not None:
            live.update(line_record)
        table[key] = orjson.dumps(state)
    return table


def test_recovered_states_show_the_same_lines_as_before_the_revoke() -> None:
    aggregator = LineAggregator(PLANT, PLANT.version)
    live = LiveLines()
    table = fold(aggregator, live, STREAM)
    before = list(live)
    assert [(r.line, r.window, r.start_ms, r.revision) for r in before] == [
        ("L1", "day", START_MS, 1),
        ("L1", "hour", START_MS + HOUR_MS, 2),
        ("L1", "shift", START_MS, 0),
        ("L2", "hour", START_MS, 0),
    ]
    assert before[1].good == 220

    live.forget_all()  # partitions revoked
    assert list(live) == []
    show_recovered_lines(table, aggregator, live)
    assert list(live) == before


def test_a_worker_shows_only_the_lines_whose_state_it_recovered() -> None:
    aggregator = LineAggregator(PLANT, PLANT.version)
    table = fold(aggregator, LiveLines(), STREAM)
    live = LiveLines()
    show_recovered_lines({b"acme/L2": table[b"acme/L2"]}, aggregator, live)
    assert {(r.line, r.window) for r in live} == {("L2", "hour")}


def test_a_record_folded_after_the_revoke_is_not_replaced_by_the_older_recovered_one() -> None:
    aggregator = LineAggregator(PLANT, PLANT.version)
    live = LiveLines()
    table = fold(aggregator, live, STREAM[:1])
    recovered_state = table[b"acme/L1"]
    live.forget_all()
    # The line's next hour is folded before the refill runs (the table already holds the new state,
    # but the refill may have read the old one): the newer record stays.
    fold(aggregator, live, STREAM[:2])
    show_recovered_lines({b"acme/L1": recovered_state}, aggregator, live)
    assert [(r.window, r.start_ms) for r in live] == [("hour", START_MS + HOUR_MS)]


def test_each_recovered_state_is_read_once_per_rebalance() -> None:
    aggregator = LineAggregator(PLANT, PLANT.version)
    live = LiveLines()
    table = fold(aggregator, live, STREAM)
    live.forget_all()
    show_recovered_lines(table, aggregator, live)
    shown = list(live)
    # A state that changed meanwhile is not read again: its records reach live from the fold.
    table[b"acme/L1"] = b"not read"
    show_recovered_lines(table, aggregator, live)
    assert list(live) == shown
    live.forget_all()  # the next rebalance reads every recovered state again
    show_recovered_lines(table, aggregator, live)
    assert {(r.line, r.window) for r in live} == {("L2", "hour")}


def test_a_state_written_before_newest_records_were_kept_still_folds_and_shows_nothing() -> None:
    aggregator = LineAggregator(PLANT, PLANT.version)
    table = fold(aggregator, LiveLines(), STREAM[:2])
    old = orjson.loads(table[b"acme/L1"])
    del old["newest"]
    live = LiveLines()
    show_recovered_lines({b"acme/L1": orjson.dumps(old)}, aggregator, live)
    assert list(live) == []
    state, record = aggregator.apply(old, STREAM[3])  # M02's hour: the line's next record
    assert record is not None
    assert newest_records(state) == [record]


def test_lines_no_longer_in_the_plant_file_are_not_shown() -> None:
    table = fold(LineAggregator(PLANT, PLANT.version), LiveLines(), STREAM)
    without_l2 = PlantConfig.model_validate(
        {**PLANT.model_dump(), "machines": [m.model_dump() for m in PLANT.machines if m.line == "L1"]}
    )
    live = LiveLines()
    show_recovered_lines(table, LineAggregator(without_l2, without_l2.version), live)
    assert {r.line for r in live} == {"L1"}


def test_a_lines_newest_complete_hour_is_shown_until_the_next_one_is_complete() -> None:
    """A line's hour used to be shown as soon as one machine had closed it: a stopped machine reports
    last, so the partial figure left out the very machine holding the line (and named no culprit)
    for up to close_silent_after_s. Before the line's first complete hour its newest is shown."""
    aggregator = LineAggregator(PLANT, PLANT.version)
    live = LiveLines()
    table: dict[bytes, bytes] = {}

    def close(machine: str, start_ms: int) -> list[tuple[int, bool]]:
        key = line_key(record := kpi(machine, "L1", "hour", start_ms))
        stored = table.get(key)
        state, line_record = aggregator.apply(None if stored is None else orjson.loads(stored), record)
        if line_record is not None:
            live.update(line_record)
        table[key] = orjson.dumps(state)
        return [(r.start_ms, r.complete) for r in live if (r.line, r.window) == ("L1", "hour")]

    assert close("M01", START_MS) == [(START_MS, False)]
    assert close("M02", START_MS) == [(START_MS, True)]
    assert close("M01", START_MS + HOUR_MS) == [(START_MS, True)]  # M02 has not closed the new hour
    live.forget_all()  # a restart shows what the state keeps: the same choice
    show_recovered_lines(table, aggregator, live)
    assert [(r.start_ms, r.complete) for r in live if r.line == "L1"] == [(START_MS, True)]
    assert close("M02", START_MS + HOUR_MS) == [(START_MS + HOUR_MS, True)]
