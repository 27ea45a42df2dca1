"""Shared pieces of the Prometheus and status-page tests: system tools, and a worker with demo data."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import pytest
import yaml

from models.calendar import PlantCalendar
from service.plant_file import DEMO_PLANT, load_demo_plant
from service.simulator.break_schedule import BreakSchedule
from tests.integration.harness import WorkerProcess, produce, wait_for
from tests.integration.streams_fixtures import create_topics, simulated_messages, unique_topics

__all__ = [
    "DEMO_MESSAGES",
    "DEMO_SPAN_MS",
    "closed_hour_production_ms",
    "demo_machines",
    "demo_start_ms",
    "demo_worker",
    "require_executable",
]

# About an hour of the demo plant: every machine has open hour/shift/day windows with OEE figures.
DEMO_MESSAGES = 3_000
DEMO_SPAN_MS = 65 * 60_000  # what DEMO_MESSAGES span (59 min), with a margin
HOUR_MS = 3_600_000


def require_executable(name: str) -> str:
    """The tool's path; a missing tool fails under CI=true and skips, with the reason, elsewhere."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed (scripts/install-system-deps installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def demo_machines() -> set[tuple[str, str]]:
    """(tenant, machine) of every machine in the built-in demo plant."""
    return {(machine.tenant, machine.id) for machine in load_demo_plant().machines}


def demo_start_ms(now_ms: int) -> int:
    """Where the demo hour starts: two to three hours back, at half past, inside one shift.

    The newest events are then an hour or more old: recent, but older than the 30-minute
    LinepulseMachineSilent threshold. At half past, the data holds a whole hour boundary well inside
    it, so every machine of a line passes it and the line's hour closes (the Grafana "Line OEE" panel
    once came back empty when the data started at a few minutes past and ended just after the hour).
    Inside one shift (and so one production day, which starts with a shift), every machine's open
    shift and day hold the whole hour; data that crossed a boundary would leave minutes in the new
    shift, where a machine that was down has no OEE yet. (The demo plant's zone is a whole number of
    hours from UTC, so its hours start on UTC hours.)

    The closed hour's part inside the data must hold production: when it fell wholly in a planned
    stop (the swing shift's lunch, 18:30-19:00 in Seoul, for tests started 12:00-13:00 UTC) that hour
    had no OEE and the line OEE series never came. Such a start moves ten minutes back.
    """
    plant = load_demo_plant()
    calendar = PlantCalendar.from_plant(plant)
    schedule = BreakSchedule(plant)
    back_ms = now_ms - 150 * 60_000
    half_past_ms = back_ms - back_ms % HOUR_MS + 30 * 60_000
    for earlier_ms in (0, 10 * 60_000, HOUR_MS, HOUR_MS + 10 * 60_000):
        start_ms = _in_one_shift(calendar, half_past_ms - earlier_ms)
        if closed_hour_production_ms(schedule, start_ms) >= 5 * 60_000:
            return start_ms
    raise AssertionError(f"no demo hour with 5 minutes of production found before {now_ms}")


def _in_one_shift(calendar: PlantCalendar, start_ms: int) -> int:
    """``start_ms``, or earlier so that the data ends in the shift it starts in."""
    last_ms = start_ms + DEMO_SPAN_MS
    shift = calendar.shift_at(last_ms)
    if shift is None or shift.start_ms > start_ms:
        boundary_ms = shift.start_ms if shift is not None else calendar.day_at(last_ms).start_ms
        start_ms = boundary_ms - DEMO_SPAN_MS - 10 * 60_000
    return start_ms


def closed_hour_production_ms(schedule: BreakSchedule, start_ms: int) -> int:
    """Milliseconds of production (outside planned stops) from ``start_ms`` to the next hour."""
    end_ms = start_ms - start_ms % HOUR_MS + HOUR_MS
    produced, at_ms = 0, start_ms
    while at_ms < end_ms:
        stop = schedule.window_at(at_ms)
        if stop is not None:
            at_ms = min(stop.end_ms, end_ms)
            continue
        next_ms = min(schedule.next_boundary(at_ms) or end_ms, end_ms)
        produced += next_ms - at_ms
        at_ms = next_ms
    return produced


@contextmanager
def demo_worker(
    bootstrap: str, workdir: Path, *, capability_min_parts: int | None = None
) -> Iterator[WorkerProcess]:
    """A real worker on fresh topics that has applied ``DEMO_MESSAGES`` simulated messages, with the
    demo plant (``capability_min_parts``: its monitoring setting instead of the default: the hour of
    data measures a few parts per machine)."""
    messages = simulated_messages(DEMO_MESSAGES, start_ms=demo_start_ms(int(time.time() * 1000)))
    topics = unique_topics()
    create_topics(bootstrap, topics)
    produce(bootstrap, topics["telemetry"], messages)
    config = None
    if capability_min_parts is not None:
        text = resources.files("service.plants").joinpath(DEMO_PLANT).read_text(encoding="utf-8")
        assert text.count("\nmonitoring: {}") == 1, "the demo plant's monitoring block changed"
        config = workdir / "plant.yaml"
        config.write_text(
            text.replace(
                "\nmonitoring: {}", f"\nmonitoring: {{capability_min_parts: {capability_min_parts}}}"
            )
        )
    with WorkerProcess(bootstrap, topics, workdir, config=config) as worker:
        wait_for(lambda: worker.applied_events() >= DEMO_MESSAGES, 45, f"{DEMO_MESSAGES} events applied")
        yield worker


def promtool_verdict(
    workdir: Path, series: list[dict[str, str]], expr: str, at: str, samples: list[dict[str, object]]
) -> subprocess.CompletedProcess[str]:
    """promtool's verdict (Prometheus's own PromQL engine) on ``expr`` over ``series`` in 1-minute
    steps, evaluated at ``at``, expecting exactly ``samples`` (``{"labels": ..., "value": ...}``)."""
    test = {
        "interval": "1m",
        "input_series": series,
        "promql_expr_test": [{"expr": expr, "eval_time": at, "exp_samples": samples}],
    }
    test_file = workdir / "promql_test.yml"
    test_file.write_text(yaml.safe_dump({"tests": [test]}))
    return subprocess.run(
        [require_executable("promtool"), "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
