"""Hand-computed KPI records on the ``kpis`` topic, through a real broker: a night shift across
midnight with a planned stop and an hour without production, and the same records from ``analyze``."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from service.plant_file import load_plant
from tests.integration.conftest import BrokerEndpoint
from tests.integration.harness import WorkerProcess, consume_all, produce, records, wait_for
from tests.integration.streams_fixtures import analyze_lines, create_topics, kpi_identity, unique_topics

SEOUL = ZoneInfo("Asia/Seoul")
PLANT_YAML = """
timezone: Asia/Seoul
shifts:
  - {name: day, start: "06:00", end: "14:00"}
  - {name: swing, start: "14:00", end: "22:00"}
  - {name: night, start: "22:00", end: "06:00"}
machines:
  - {tenant: acme, site: p1, line: L1, id: M01, ideal_cycle_s: 12.0}
state_timeout_s: 3600
alerts: {oee_below: null}
"""


def night() -> datetime:
    """22:00 three days ago in Seoul: the night shift runs to 06:00 the next day."""
    return (datetime.now(SEOUL) - timedelta(days=3)).replace(hour=22, minute=0, second=0, microsecond=0)


def telemetry(start: datetime) -> list[bytes]:
    def at(hours: float) -> int:
        return int((start + timedelta(hours=hours)).timestamp() * 1000)

    base = {"v": 1, "tenant": "acme", "site": "p1", "line": "L1", "machine": "M01"}
    events: list[dict[str, Any]] = [{"ts": at(-0.5), "kind": "state", "state": "running"}]  # 21:30
    events += [{"ts": at(h), "kind": "count", "good": 100} for h in (0.5, 1.5, 2.5, 3.5)]  # to 01:30
    events += [
        {"ts": at(4), "kind": "state", "state": "planned_stop", "reason": "break"},  # 02:00-02:30
        {"ts": at(4.5), "kind": "state", "state": "running"},
        {"ts": at(5 + 20 / 60), "kind": "count", "good": 0},  # 03:20: the hour 03:00 makes nothing
        {"ts": at(6.25), "kind": "count", "good": 100},  # 04:15
        {"ts": at(7 + 10 / 60), "kind": "count", "good": 100},  # 05:10
        {"ts": at(8 + 10 / 3600), "kind": "state", "state": "running"},  # 06:00:10 closes the shift
    ]
    return [orjson.dumps({**base, **event}) for event in events]


def test_night_shift_planned_stop_and_an_hour_without_production(
    broker: BrokerEndpoint, tmp_path: Path
) -> None:
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(PLANT_YAML)
    start = night()
    values = telemetry(start)
    topics = unique_topics()
    create_topics(broker.bootstrap_servers, topics)
    produce(broker.bootstrap_servers, topics["telemetry"], [(b"acme/M01", value) for value in values])
    found: list[dict[str, Any]] = []
    with WorkerProcess(broker.bootstrap_servers, topics, tmp_path, config=plant_file) as worker:
        wait_for(lambda: worker.applied_events() >= len(values), 120, "all events applied")

        def night_shift_closed() -> bool:
            found[:] = [r for r in records(consume_all(broker.bootstrap_servers, topics["kpis"], idle_s=2))]
            return any(r["window"] == "shift" and r["shift"] == "night" for r in found)

        wait_for(night_shift_closed, 60, "the night shift's record")
        worker.assert_alive()

    def hour(hh: int) -> dict[str, Any]:
        starts = int((start + timedelta(hours=(hh - 22) % 24)).timestamp() * 1000)
        [record] = [r for r in found if r["window"] == "hour" and r["start_ms"] == starts]
        return record

    [shift] = [r for r in found if r["window"] == "shift" and r["shift"] == "night"]
    assert shift["start"].endswith("T22:00:00+09:00") and shift["end"].endswith("T06:00:00+09:00")
    assert shift["planned_stop_s"] == 1800 and shift["planned_s"] == 27000 and shift["run_s"] == 27000
    assert (shift["good"], shift["scrap"], shift["availability"], shift["quality"]) == (600, 0, 1.0, 1.0)
    assert shift["performance"] == pytest.approx(600 * 12 / 27000)
    assert shift["oee"] == shift["availability"] * shift["performance"] * shift["quality"]
    assert shift["losses_s"] == {"planned_stop/break": 1800.0}
    # The hour across midnight belongs to the night shift like any other.
    assert hour(0)["good"] == 100 and hour(0)["start"].endswith("T00:00:00+09:00")
    # The break: it leaves planned busy time.
    assert (hour(2)["planned_stop_s"], hour(2)["planned_s"], hour(2)["run_s"]) == (1800, 1800, 1800)
    # Running without a unit: performance 0, quality and OEE undefined (null, never 0 or 1).
    assert (hour(3)["run_s"], hour(3)["good"], hour(3)["performance"]) == (3600, 0, 0.0)
    assert hour(3)["quality"] is None and hour(3)["oee"] is None

    offline = analyze_lines(values, tmp_path, load_plant(plant_file))
    kpi_identity([r for r in found if "window" in r], offline["kpis"])
