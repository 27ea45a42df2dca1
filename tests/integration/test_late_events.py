"""Micro-stops and a late-event correction through a real broker: the revised KPI record on the
``kpis`` topic, the too-late count on /metrics, and the same records from ``analyze``."""

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
micro_stop_s: 120
allowed_lateness_s: 300
alerts: {oee_below: null}
"""


def telemetry() -> list[bytes]:
    day = (datetime.now(SEOUL) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)

    def at(hh: int, mm: int, ss: int = 0) -> int:
        return int((day + timedelta(hours=hh, minutes=mm, seconds=ss)).timestamp() * 1000)

    base = {"v": 1, "tenant": "acme", "site": "p1", "line": "L1", "machine": "M01"}
    events: list[dict[str, Any]] = [
        {"ts": at(6, 0), "kind": "state", "state": "running"},
        {"ts": at(6, 10), "kind": "state", "state": "idle", "reason": "jam"},  # 60 s: a small stop
        {"ts": at(6, 11), "kind": "state", "state": "running"},
        {"ts": at(6, 20), "kind": "state", "state": "down", "reason": "motor"},  # 600 s: a breakdown
        {"ts": at(6, 30), "kind": "state", "state": "running"},
        {"ts": at(6, 50), "kind": "count", "good": 150, "scrap": 10, "scrap_reason": "burr"},
        {"ts": at(6, 59), "kind": "count", "good": 50},
        {"ts": at(7, 0, 10), "kind": "state", "state": "running"},  # the hour 06:00 closes: revision 0
        {"ts": at(6, 58), "kind": "count", "good": 20},  # 2 min late: revision 1
        {"ts": at(6, 30), "kind": "count", "good": 7},  # 30 min late: too late, counted only
        {"ts": at(7, 10), "kind": "state", "state": "running"},
    ]
    return [orjson.dumps({**base, **event}) for event in events]


def test_late_event_revises_the_hour_on_the_kpis_topic(broker: BrokerEndpoint, tmp_path: Path) -> None:
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(PLANT_YAML)
    values = telemetry()
    topics = unique_topics()
    create_topics(broker.bootstrap_servers, topics)
    produce(broker.bootstrap_servers, topics["telemetry"], [(b"acme/M01", value) for value in values])
    # Someone else writes to our output and internal topics: dead-lettered, the line view goes on.
    produce(broker.bootstrap_servers, topics["kpis"], [(b"acme/M01", b'{"not": "a kpi record"}')])
    produce(broker.bootstrap_servers, topics["kpis_by_line"], [(b"acme/L1", b"\xff garbage")])

    with WorkerProcess(broker.bootstrap_servers, topics, tmp_path, config=plant_file) as worker:
        wait_for(lambda: worker.applied_events() >= len(values) - 1, 120, "all events applied")
        hours: list[dict[str, Any]] = []

        def both_revisions() -> bool:
            found = records(consume_all(broker.bootstrap_servers, topics["kpis"], idle_s=2))
            hours[:] = [record for record in found if record.get("window") == "hour"]  # not the stray one
            return len(hours) >= 2

        wait_for(both_revisions, 120, "two revisions of the hour 06:00")
        lines: list[dict[str, Any]] = []

        def line_record_complete() -> bool:
            found = records(consume_all(broker.bootstrap_servers, topics["line_kpis"], idle_s=2))
            lines[:] = [record for record in found if record["window"] == "hour"]
            return any(record["good"] == 220 for record in lines)

        wait_for(line_record_complete, 60, "the line's hour with the corrected count")
        # A valid KPI record under another line's key would put the line's state on a wrong partition.
        produce(broker.bootstrap_servers, topics["kpis_by_line"], [(b"acme/L9", orjson.dumps(hours[0]))])
        dead: set[tuple[str, str]] = set()

        def three_dead_letters() -> bool:
            for message in consume_all(broker.bootstrap_servers, topics["dead_letters"], idle_s=2):
                headers = dict(message.headers)
                dead.add(
                    (headers["linepulse.source.topic"].decode(), headers["linepulse.error.code"].decode())
                )
            return len(dead) >= 3

        wait_for(three_dead_letters, 60, "the stray records dead-lettered")
        assert dead == {
            (topics["kpis"], "invalid_schema"),
            (topics["kpis_by_line"], "invalid_schema"),
            (topics["kpis_by_line"], "key_mismatch"),
        }
        worker.assert_alive()
        metrics = worker.get("/metrics")
        assert 'linepulse_messages_total{result="late"} 1.0' in metrics
        assert 'linepulse_messages_total{result="too_late"} 1.0' in metrics

    first, second = sorted(hours, key=lambda record: record["revision"])
    assert (first["revision"], second["revision"]) == (0, 1)
    assert first["start_ms"] == second["start_ms"] and first["start"].endswith("T06:00:00+09:00")
    for record in (first, second):
        assert record["planned_s"] == 3600 and record["run_s"] == 3000
        assert record["availability_loss_s"] == 600 and record["failures"] == 1
        assert record["micro_stops"] == 1 and record["big_losses_s"]["small_stops"] == 60
        assert record["oee"] == record["availability"] * record["performance"] * record["quality"]
    assert (first["good"], first["scrap"]) == (200, 10)
    assert first["performance"] == pytest.approx(210 * 12 / 3000)
    assert (second["good"], second["scrap"]) == (220, 10)  # the late 20; never the too-late 7
    assert second["performance"] == pytest.approx(230 * 12 / 3000)
    assert second["quality"] == pytest.approx(220 / 230)

    offline = analyze_lines(values, tmp_path, load_plant(plant_file))
    stream_kpis = [r for r in records(consume_all(broker.bootstrap_servers, topics["kpis"])) if "window" in r]
    kpi_identity(stream_kpis, offline["kpis"])
