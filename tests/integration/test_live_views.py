"""What a real worker's live views (/api/machines, /metrics) show: only the machines of its plant
configuration after a restart, and staleness on each tenant's stream clock."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from tests.integration.conftest import BrokerEndpoint
from tests.integration.harness import WorkerProcess, produce, wait_for
from tests.integration.streams_fixtures import create_topics, unique_topics

HEADER = "timezone: Asia/Seoul\nclose_silent_after_s: null\nalerts: {oee_below: null}\n"
MACHINE = "  - {{tenant: {0}, site: p1, line: L1, id: {1}, ideal_cycle_s: 6.0}}\n"


def plant_yaml(keys: list[str], extra: str = "") -> str:
    machines = "".join(MACHINE.format(*key.split("/")) for key in keys)
    return HEADER + extra + "machines:\n" + machines


def event(key: str, at_ms: int) -> tuple[bytes, bytes]:
    tenant, machine = key.split("/")
    base = {"v": 1, "tenant": tenant, "site": "p1", "line": "L1", "machine": machine, "ts": at_ms}
    return key.encode(), orjson.dumps({**base, "kind": "state", "state": "running"})


def shown(worker: WorkerProcess) -> dict[str, dict[str, Any]]:
    return {f"{m['tenant']}/{m['machine']}": m for m in worker.machines()}


def test_machines_removed_from_the_plant_are_not_shown_after_a_restart(
    broker: BrokerEndpoint, tmp_path: Path
) -> None:
    everything = ["acme/M01", "acme/M02", "acme/M03", "gone/M01"]
    kept = ["acme/M01", "acme/M02"]
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(plant_yaml(everything))
    topics = unique_topics()
    create_topics(broker.bootstrap_servers, topics)
    now = int(time.time() * 1000)
    worker = WorkerProcess(broker.bootstrap_servers, topics, tmp_path, config=plant_file)
    with worker:
        produce(broker.bootstrap_servers, topics["telemetry"], [event(key, now) for key in everything])
        wait_for(lambda: set(shown(worker)) == set(everything), 120, "every machine applied")
        assert 'machine="M03"' in worker.get("/metrics")

    plant_file.write_text(plant_yaml(kept))  # M03 and the whole tenant "gone" removed
    with worker:
        # Recovered from the table, all in one pass of the worker's timer.
        wait_for(lambda: set(kept) <= set(shown(worker)), 60, "the kept machines recovered")
        time.sleep(6)  # one more pass of the timer that shows recovered machines
        assert set(shown(worker)) == set(kept)
        metrics = worker.get("/metrics")
        assert 'machine="M01"' in metrics and 'machine="M03"' not in metrics
        assert 'tenant="gone"' not in metrics
        log = worker.log_path.read_text(errors="replace").split("===== start 2 =====")[1]
        assert "not in the plant configuration" in log and "acme/M03, gone/M01" in log

    plant_file.write_text(plant_yaml(everything))  # re-added: they go on from their kept states
    with worker:
        wait_for(lambda: set(shown(worker)) == set(everything), 60, "the re-added machines recovered")
        assert shown(worker)["acme/M03"]["totals"]["events"] == 1
