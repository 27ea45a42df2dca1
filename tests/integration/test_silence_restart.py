"""A worker killed (SIGKILL) just after a machine joined its clock mid-minute, more than
``close_silent_after_s`` behind, ticks it after the restart as ``analyze`` does: in the next minute,
so its totals (``late_events`` above all) are those of an uninterrupted run (docs/kpis.md, Silent
machines)."""

from __future__ import annotations

import time
from pathlib import Path

from service.brokers import BrokerEndpoint
from tests.integration.harness import WorkerProcess, produce, wait_for
from tests.integration.streams_fixtures import analyze_lines, create_topics, unique_topics
from tests.integration.test_tenant_stream_time import PLANT_YAML
from tests.unit.test_silence_restart import late_joiner
from tests.unit.test_stream_time_per_tenant import plant


def test_a_worker_killed_after_a_machine_joined_mid_minute_keeps_analyzes_totals(
    broker: BrokerEndpoint, tmp_path: Path
) -> None:
    lines = late_joiner()
    cut = next(i for i, line in enumerate(lines) if b'"M2"' in line) + 3  # M2's second message read
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(PLANT_YAML)
    topics = unique_topics()
    create_topics(broker.bootstrap_servers, topics, 1)
    keyed = [(b"a/M2" if b'"M2"' in line else b"a/M1", line) for line in lines]
    produce(broker.bootstrap_servers, topics["telemetry"], keyed[:cut])
    env = {"LINEPULSE_PARTITIONS": "1", "LINEPULSE_COMMIT_INTERVAL_S": "0.5"}
    worker = WorkerProcess(
        broker.bootstrap_servers, topics, tmp_path, config=plant_file, partitions=1, extra_env=env
    )
    worker.start()
    try:
        wait_for(lambda: worker.applied_events() >= cut, 120, f"{cut} events applied")
        time.sleep(2)  # committed: the restart resumes at the cut, in the minute M2 joined in
        worker.kill9()
        produce(broker.bootstrap_servers, topics["telemetry"], keyed[cut:])
        worker.start()
        wait_for(lambda: worker.applied_events() >= len(lines), 120, "all events applied after the kill")
        totals = worker.totals()
    finally:
        worker.stop()
    offline = analyze_lines(lines, tmp_path, plant(), 1)["summary"]["machines"]
    assert offline["a/M2"]["late_events"] > 0
    assert totals == offline
