"""The demo hour of the observability tests never straddles a shift, whatever the time of day.

CI once failed at 22:14 UTC (07:14 in Seoul): the demo hour had crossed the 06:00 shift and day
start, so a machine that was down in the new shift's few minutes had no OEE on the status page.
And the Grafana "Line OEE" panel (closed hours of a line) came back empty when the data held no
hour boundary that every machine had passed, or when that hour's part in the data was all lunch
(12:00-13:00 UTC, 18:30 in Seoul: the hour had no OEE).
"""

from __future__ import annotations

from datetime import UTC, datetime

from models.calendar import PlantCalendar
from service.plant_file import load_demo_plant
from service.simulator.break_schedule import BreakSchedule
from tests.integration.observability import DEMO_SPAN_MS, closed_hour_production_ms, demo_start_ms

SILENT_AFTER_MS = 30 * 60_000  # LinepulseMachineSilent's threshold
DATA_SPAN_MS = 59 * 60_000  # what the DEMO_MESSAGES actually span
HOUR_MS = 3_600_000


def test_demo_hour_lies_in_one_shift_and_is_old_enough_at_any_time_of_day() -> None:
    plant = load_demo_plant()
    calendar, schedule = PlantCalendar.from_plant(plant), BreakSchedule(plant)
    midnight_ms = int(datetime(2026, 3, 7, tzinfo=UTC).timestamp() * 1000)
    for minute in range(0, 2 * 24 * 60, 5):
        now_ms = midnight_ms + minute * 60_000
        start_ms = demo_start_ms(now_ms)
        last_ms = start_ms + DEMO_SPAN_MS
        first, last = calendar.shift_at(start_ms), calendar.shift_at(last_ms)
        assert first is not None and first == last, (now_ms, first, last)
        assert calendar.day_at(start_ms) == calendar.day_at(last_ms)
        assert now_ms - last_ms > SILENT_AFTER_MS
        assert now_ms - start_ms < 4 * 3_600_000  # still recent: the rate and silence rules see it
        next_hour_ms = start_ms - start_ms % HOUR_MS + HOUR_MS
        # An hour closes for every machine: its end lies well inside the data, whole minutes of
        # data on both sides of it.
        assert start_ms + 15 * 60_000 <= next_hour_ms <= start_ms + DATA_SPAN_MS - 15 * 60_000, now_ms
        # ... and that hour holds production in the data, so it has an OEE.
        assert closed_hour_production_ms(schedule, start_ms) >= 5 * 60_000, now_ms
