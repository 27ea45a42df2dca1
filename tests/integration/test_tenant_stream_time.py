"""The worker gives ``analyze``'s records for two tenants sharing partitions, one of whose gateways
held 40 minutes back, whatever its batch size: stream time per partition and tenant, and silence
ticks that follow the partitions' message order, not the batches (docs/kpis.md, Silent machines)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from service.brokers import BrokerEndpoint
from streams.partitioning import key_partition
from tests.integration.harness import WorkerProcess, consume_all, produce, records, wait_for
from tests.integration.streams_fixtures import analyze_lines, create_topics, unique_topics
from tests.unit.test_stream_time_per_tenant import HELD, day, held_back, live, plant

PARTITIONS = 5  # a/M1, a/M2 and b/M1 share a partition; b/M2 has its own
PLANT_YAML = """
timezone: UTC
machines:
  - {tenant: a, site: s, line: L, id: M1, ideal_cycle_s: 10.0}
  - {tenant: a, site: s, line: L, id: M2, ideal_cycle_s: 10.0}
  - {tenant: b, site: s, line: L, id: M1, ideal_cycle_s: 10.0}
  - {tenant: b, site: s, line: L, id: M2, ideal_cycle_s: 10.0}
"""


def _key(line: bytes) -> bytes:
    return "{tenant}/{machine}".format(**orjson.loads(line)).encode()


@pytest.mark.parametrize("batch", [5, 1000])
def test_the_worker_gives_analyzes_records_for_a_held_back_gateway_next_to_another_tenant(
    broker: BrokerEndpoint, tmp_path: Path, batch: int
) -> None:
    shared = {key_partition(key, PARTITIONS) for key in ("a/M1", "a/M2", "b/M1")}
    assert len(shared) == 1 and key_partition("b/M2", PARTITIONS) not in shared
    lines = held_back(
        live(day("a"), day("b")),
        lambda minute, line: HELD[0] <= minute < HELD[1] and b'"a"' in line and b'"M2"' in line,
    )
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(PLANT_YAML)
    topics = unique_topics()
    create_topics(broker.bootstrap_servers, topics, PARTITIONS)
    produce(broker.bootstrap_servers, topics["telemetry"], [(_key(line), line) for line in lines])
    offline = analyze_lines(lines, tmp_path, plant(), PARTITIONS)
    expected_kpis = sorted(
        orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in offline["kpis"] if r["complete"]
    )
    expected_alerts = sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in offline["alerts"])
    assert any(orjson.loads(r)["late_events"] for r in expected_kpis)  # the held events were late
    env = {"LINEPULSE_BATCH_MAX_MESSAGES": str(batch), "LINEPULSE_PARTITIONS": str(PARTITIONS)}
    with WorkerProcess(
        broker.bootstrap_servers, topics, tmp_path, config=plant_file, partitions=PARTITIONS, extra_env=env
    ) as worker:
        wait_for(lambda: worker.applied_events() >= len(lines), 300, "all events applied")
        found: dict[str, list[bytes]] = {}

        def all_records() -> bool:
            for name in ("kpis", "alerts"):
                found[name] = sorted(
                    orjson.dumps(r, option=orjson.OPT_SORT_KEYS)
                    for r in records(consume_all(broker.bootstrap_servers, topics[name], idle_s=2))
                )
            return len(found["kpis"]) >= len(expected_kpis) and len(found["alerts"]) >= len(expected_alerts)

        wait_for(all_records, 120, "the records published")
        worker.assert_alive()
    assert found["kpis"] == expected_kpis
    assert found["alerts"] == expected_alerts
