"""Alert records on the ``alerts`` topic, through a real broker, are those ``analyze`` writes for the
same telemetry: a stop that escalates (published again, resolved with its total), parts failing
every few (one alert, critical from the third, resolved after in-spec parts) and low shifts (each
resolved by the next)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from service.plant_file import load_plant
from tests.integration.conftest import BrokerEndpoint
from tests.integration.harness import WorkerProcess, consume_all, produce, records, wait_for
from tests.integration.streams_fixtures import analyze_lines, create_topics, unique_topics

PLANT_YAML = """
timezone: UTC
shifts:
  - {name: day, start: "06:00", end: "14:00"}
  - {name: swing, start: "14:00", end: "22:00"}
  - {name: night, start: "22:00", end: "06:00"}
machines:
  - {tenant: acme, site: p1, line: L1, id: M01, name: Press 1, ideal_cycle_s: 12.0}
state_timeout_s: 3600
alerts: {down_after_s: 300, oee_below: 0.5}
"""


def telemetry(day: datetime) -> list[bytes]:
    def at(hh: int, mm: int = 0) -> int:
        return int((day + timedelta(hours=hh, minutes=mm)).timestamp() * 1000)

    base = {"v": 1, "tenant": "acme", "site": "p1", "line": "L1", "machine": "M01"}
    events: list[dict[str, Any]] = [{"ts": at(12), "kind": "state", "state": "running"}]
    # 12:00-12:34: every third part too long, ten times, then five good ones.
    for i, value in enumerate([10.0, 10.0, 10.5] * 10 + [10.0] * 5):
        limits = {"lsl": 9.8, "usl": 10.2, "product": "P1"}
        events.append(
            {"ts": at(12, i + 1), "kind": "quality", "characteristic": "len_mm", "value": value, **limits}
        )
    # 12:40 idle for want of material, 12:46 down (breakdown), 13:21 running again.
    events.append({"ts": at(12, 40), "kind": "state", "state": "idle", "reason": "no_material"})
    events += [{"ts": at(12, m), "kind": "sensor", "signal": "v", "value": 1.0} for m in range(41, 46)]
    events.append({"ts": at(12, 46), "kind": "state", "state": "down", "reason": "breakdown"})
    events += [{"ts": at(12, m), "kind": "sensor", "signal": "v", "value": 1.0} for m in range(47, 60)]
    events += [{"ts": at(13, m), "kind": "sensor", "signal": "v", "value": 1.0} for m in range(0, 21)]
    events.append({"ts": at(13, 21), "kind": "state", "state": "running"})
    # Slow production (OEE 0.2 at best) through the day shift's end and the swing shift.
    events += [{"ts": at(13, 30) + k * 600_000, "kind": "count", "good": 10} for k in range(51)]
    events.append({"ts": at(22, 0) + 10_000, "kind": "state", "state": "running"})  # closes the swing shift
    return [orjson.dumps({**base, **event}) for event in events]


def test_alert_records_on_the_topic_are_those_analyze_writes(broker: BrokerEndpoint, tmp_path: Path) -> None:
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(PLANT_YAML)
    day = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
    values = telemetry(day)
    topics = unique_topics()
    create_topics(broker.bootstrap_servers, topics)
    produce(broker.bootstrap_servers, topics["telemetry"], [(b"acme/M01", value) for value in values])
    found: list[dict[str, Any]] = []
    with WorkerProcess(broker.bootstrap_servers, topics, tmp_path, config=plant_file) as worker:
        wait_for(lambda: worker.applied_events() >= len(values), 120, "all events applied")

        def swing_resolved() -> bool:
            found[:] = list(records(consume_all(broker.bootstrap_servers, topics["alerts"], idle_s=2)))
            return any(r["kind"] == "oee_low" and r["status"] == "resolved" for r in found)

        wait_for(swing_resolved, 60, "the day shift's oee_low alert resolved")
        worker.assert_alive()

    def of(kind: str) -> list[tuple[str, str, str]]:
        return [(r["id"], r["status"], r["severity"]) for r in found if r["kind"] == kind]

    stop = of("machine_stopped")
    assert [(status, severity) for _, status, severity in stop] == [
        ("open", "warning"),
        ("open", "critical"),
        ("resolved", "critical"),
    ]
    assert len({alert_id for alert_id, _, _ in stop}) == 1
    [resolved_stop] = [r for r in found if r["kind"] == "machine_stopped" and r["status"] == "resolved"]
    assert resolved_stop["evidence"]["stopped_s"] == 41 * 60.0
    assert resolved_stop["message"] == "Press 1 was stopped for 41 min (last down (breakdown))"
    quality = [r for r in found if r["kind"] == "quality_out_of_spec"]
    # One alert: a warning at the first bad part, critical from the third (published again), resolved.
    assert [(r["status"], r["severity"]) for r in quality] == [
        ("open", "warning"),
        ("open", "critical"),
        ("resolved", "critical"),
    ]
    assert len({r["id"] for r in quality}) == 1 and quality[-1]["evidence"]["count"] == 10
    oee = [r for r in found if r["kind"] == "oee_low"]
    assert [(r["status"], r["evidence"]["shift"]) for r in oee] == [
        ("open", "day"),
        ("resolved", "day"),
        ("open", "swing"),
    ]
    assert oee[1]["resolution"]["by"] == "next_shift" and oee[1]["resolution"]["shift"] == "swing"

    offline = analyze_lines(values, tmp_path, load_plant(plant_file))
    out_dirs = sorted(tmp_path.glob("analyze-*"))
    written = [orjson.loads(line) for line in (out_dirs[-1] / "alerts.jsonl").read_bytes().splitlines()]
    assert offline["summary"]["alerts"] == len(written)
    assert written == found
