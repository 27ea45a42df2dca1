"""The line view: line OEE from machine records (time-weighted, OEE = A x P x Q), which machine held
the line, and the aggregator's revisions, completeness and idempotence."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from models.line import MachineWindow, line_figures
from models.plant import PlantConfig
from streams.lines import LineAggregator

PLANT = PlantConfig.model_validate(
    {
        "timezone": "Asia/Seoul",
        "machines": [
            {"tenant": "acme", "site": "p1", "line": "L1", "id": machine, "ideal_cycle_s": 10.0}
            for machine in ("M01", "M02", "M03")
        ],
    }
)


def record(machine: str, *, run_s: float, performance: float, quality: float, **extra: Any) -> dict[str, Any]:
    planned = 3600.0
    availability = run_s / planned
    losses: dict[str, float] = extra.pop("losses_s", {})
    top = [
        {"state": key.split("/")[0], "reason": key.split("/")[1], "category": "availability",
         "big_loss": "unplanned_stops", "seconds": seconds}
        for key, seconds in sorted(losses.items(), key=lambda item: -item[1])
    ]  # fmt: skip
    return {
        "tenant": "acme", "site": "p1", "line": "L1", "machine": machine, "window": "hour", "shift": None,
        "start": "2026-11-25T06:00:00+09:00", "end": "2026-11-25T07:00:00+09:00",
        "start_ms": 1_764_018_000_000, "end_ms": 1_764_021_600_000, "complete": True, "revision": 0,
        "planned_s": planned, "run_s": run_s, "performance": performance,
        "oee": availability * performance * quality, "good": 100, "scrap": 0,
        "big_losses_s": {"unplanned_stops": planned - run_s, "setup_adjustments": 0.0},
        "losses_s": losses, "top_losses": top, **extra,
    }  # fmt: skip


M01 = record("M01", run_s=3000, performance=0.8, quality=0.9, losses_s={"down/motor": 600.0})
M02 = record("M02", run_s=3600, performance=0.5, quality=1.0)
M03 = record("M03", run_s=2400, performance=1.0, quality=1.0, losses_s={"idle/no_material": 1200.0})


def test_line_oee_is_time_weighted_and_the_product_of_its_factors() -> None:
    figures = line_figures([MachineWindow.from_record(r) for r in (M01, M02, M03)], PLANT.line_wait_reasons)
    assert figures.planned_s == 10_800 and figures.run_s == 9000
    assert figures.fully_productive_s == pytest.approx(2160 + 1800 + 2400)
    assert figures.availability == pytest.approx(9000 / 10_800)
    assert figures.performance == pytest.approx((2400 + 1800 + 2400) / 9000)
    assert figures.quality == pytest.approx(6360 / 6600)
    assert figures.oee == figures.availability * figures.performance * figures.quality  # type: ignore[operator]
    assert figures.oee == pytest.approx(6360 / 10_800)
    # M03 stood longer (20 min) but only waited for material: M01's breakdown held the line.
    assert figures.held_by == {
        "machine": "M01", "stop_s": 600.0, "state": "down", "reason": "motor", "big_loss": "unplanned_stops"
    }  # fmt: skip


def test_a_machine_without_an_ideal_cycle_leaves_line_performance_undefined() -> None:
    unknown = record("M02", run_s=3600, performance=0.5, quality=1.0, oee=None)
    unknown["performance"] = None
    figures = line_figures([MachineWindow.from_record(r) for r in (M01, unknown)], [])
    assert figures.availability is not None and figures.performance is None and figures.oee is None


def test_aggregator_emits_revisions_until_complete_and_ignores_redeliveries() -> None:
    lines = LineAggregator(PLANT, PLANT.version)
    state, first = lines.apply(None, M01)
    assert first is not None and (first.revision, first.complete, first.machines) == (0, False, ["M01"])
    state, second = lines.apply(state, M02)
    assert second is not None and (second.revision, second.complete) == (1, False)
    state, again = lines.apply(state, M01)
    assert again is None  # the same machine record delivered twice changes nothing
    state = orjson.loads(orjson.dumps(state))  # the table stores it as JSON
    state, third = lines.apply(state, M03)
    assert third is not None and (third.revision, third.complete) == (2, True)
    assert third.machines == third.machines_expected == ["M01", "M02", "M03"]
    assert third.oee == pytest.approx(6360 / 10_800)
    revised = {**M01, "revision": 1, "good": 120}
    state, fourth = lines.apply(state, revised)
    assert fourth is not None and fourth.revision == 3 and fourth.good == 320
    assert lines.apply(state, M01)[1] is None  # an older revision of M01 arriving late
    open_window = {**M02, "complete": False}
    assert lines.apply(state, open_window)[1] is None  # analyze's still-open windows are not folded


def test_line_figures_do_not_depend_on_the_order_machine_records_arrive() -> None:
    """The stream folds machine records in whatever order they reach the line's worker, analyze in
    file order: the line's figures must be equal to the last bit either way (float sums are not
    associative, so a plain running sum differs with the order)."""
    awkward = [
        MachineWindow.from_record(record(f"M0{i}", run_s=run, performance=performance, quality=0.97))
        for i, (run, performance) in enumerate([(3599.1, 0.1), (1e-3, 0.7), (2999.9, 0.3), (1234.5, 0.9)])
    ]
    orders = [
        awkward,
        awkward[::-1],
        awkward[1:] + awkward[:1],
        [awkward[2], awkward[0], awkward[3], awkward[1]],
    ]
    first, *others = [line_figures(order, ()) for order in orders]
    assert all(other == first for other in others)


def test_line_quality_without_scrap_is_exactly_one() -> None:
    """Σ OEE x planned over Σ performance x run is 1 only up to rounding; a line without scrap
    showed a quality of 1.0000000000000002 (and the dashboard's ratio above 100 %)."""
    machines = [
        MachineWindow.from_record(record(f"M0{i}", run_s=run, performance=performance, quality=1.0))
        for i, (run, performance) in enumerate([(500.0, 0.74), (3100.0, 0.54), (500.0, 0.71)])
    ]
    figures = line_figures(machines, ())
    assert figures.quality == 1.0
    assert figures.oee == figures.availability * figures.performance  # type: ignore[operator]


def test_only_the_plant_files_machines_where_it_places_them_may_join_a_line() -> None:
    """The stream dead-letters the records this refuses (tests/integration/test_dead_letter_headers.py)."""
    aggregator = LineAggregator(PLANT, "v1")
    assert aggregator.placement_rejection("acme", "M01", "p1", "L1") is None
    ghost = aggregator.placement_rejection("acme", "GHOST", "p1", "L1")
    assert ghost is not None and (ghost.code, ghost.field) == ("unknown_machine", "machine")
    moved = aggregator.placement_rejection("acme", "M01", "p1", "L9")
    assert moved is not None and (moved.field, moved.reason) == (
        "line",
        "acme/M01 is configured on p1/L1, not p1/L9",
    )
    assert aggregator.placement_rejection("other", "M01", "p1", "L1") is not None  # tenants apart
