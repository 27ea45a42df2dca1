"""What a real worker's live views (/api/machines, /metrics) show: only the machines of its plant
configuration after a restart, and staleness on each tenant's stream clock."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer

from service.brokers import KafkaCluster
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
    apache_kafka: KafkaCluster, tmp_path: Path
) -> None:
    # Apache Kafka only: on Tansu a restarted worker once did not recover one of the states
    # (acme/M03) at all, so what is hidden could not be told from what is lost (suspected: Tansu
    # reports a partition's end offset as its last batch's start + 1, and recovery reads up to it).
    bootstrap = apache_kafka.bootstrap_servers
    everything = ["acme/M01", "acme/M02", "acme/M03", "gone/M01"]
    kept = ["acme/M01", "acme/M02"]
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(plant_yaml(everything))
    topics = unique_topics()
    create_topics(bootstrap, topics)
    now = int(time.time() * 1000)
    worker = WorkerProcess(bootstrap, topics, tmp_path, config=plant_file)
    with worker:
        produce(bootstrap, topics["telemetry"], [event(key, now) for key in everything])
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

    # Purged as docs/operations.md says: a tombstone for its key on the state changelog.
    purge(bootstrap, f"{worker.app_id}-machine-state-changelog", b"gone/M01")
    plant_file.write_text(plant_yaml(everything))  # re-added: acme/M03 goes on from its kept state
    with worker:
        wait_for(lambda: "acme/M03" in shown(worker), 60, "the re-added machine recovered")
        time.sleep(6)
        assert set(shown(worker)) == {*kept, "acme/M03"}
        assert shown(worker)["acme/M03"]["totals"]["events"] == 1


def purge(bootstrap: str, changelog: str, key: bytes) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all")
    try:
        producer.send(changelog, key=key, value=None)  # default partitioner: the key's partition
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=30)


def test_api_machines_staleness_is_no_data_on_the_stream_clock(
    broker: BrokerEndpoint, tmp_path: Path
) -> None:
    live, replayed = ["acme/M01", "acme/M02"], ["hist/M01", "hist/M02"]
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(plant_yaml(live + replayed, "state_timeout_s: 20\n"))
    topics = unique_topics()
    create_topics(broker.bootstrap_servers, topics)
    with WorkerProcess(broker.bootstrap_servers, topics, tmp_path, config=plant_file) as worker:
        now = int(time.time() * 1000)
        old = now - 30 * 86_400_000  # a replay of last month: hist/M02 is silent after its first event
        messages = [event(key, now) for key in live] + [event("hist/M02", old)]
        messages += [event("hist/M01", old + minute * 60_000) for minute in range(6)]
        produce(broker.bootstrap_servers, topics["telemetry"], messages)
        wait_for(lambda: sum(m["totals"]["events"] for m in worker.machines()) == 9, 60, "all applied")
        machines = shown(worker)
        assert {key: m["stale"] for key, m in machines.items()} == {
            "acme/M01": False,
            "acme/M02": False,
            "hist/M01": False,  # 30 days behind the wall clock, but it is being received
            "hist/M02": True,  # silent for 5 of the replay's minutes
        }
        assert 300.0 <= machines["hist/M02"]["silent_s"] < 320.0  # + wall clock since the newest
        # /metrics?tenant= as the API's query: that tenant's series only, the worker's own not.
        everyone, acme = worker.get("/metrics"), worker.get("/metrics?tenant=acme")
        assert 'tenant="hist"' in everyone and "linepulse_messages_total" in everyone
        assert (
            'linepulse_machine_state{line="L1",machine="M02",site="p1",state="running",tenant="acme"} 1.0'
            in acme
        )
        assert 'tenant="hist"' not in acme and "linepulse_messages_total" not in acme
        for query in ("tenant=nope", "tenant=acme&tenant=hist", "Tenant=acme"):
            try:
                urllib.request.urlopen(f"{worker.base_url}/metrics?{query}", timeout=5)
            except urllib.error.HTTPError as refused:
                assert refused.code == 400 and refused.read().decode().lower().startswith("tenant")
            else:
                raise AssertionError(f"/metrics?{query} was answered with every tenant's series")
        assert all(m["received_ago_s"] < 20 for m in machines.values())

        # Nothing more arrives: the whole plant turns stale (with the newest event time of the
        # shown machines as the clock, nothing ever did).
        wait_for(lambda: all(m["stale"] for m in worker.machines()), 60, "every machine stale")
        for machine in worker.machines():
            assert machine["received_ago_s"] > 20 and machine["silent_s"] > 20
