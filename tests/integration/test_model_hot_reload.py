"""Hot reload in a running worker, on Apache Kafka: a model registered while it runs is used without a
restart, and a tampered artifact dropped into the registry is refused while the previous version keeps
scoring.

The worker starts with an empty model registry. ``linepulse train`` then registers ``v1`` of M01's
model (into the registry the worker reads); a day with an anomaly burst is produced and an anomaly
alert naming ``v1`` must appear on the alerts topic. Next, ``v2`` is trained elsewhere, one byte of its
artifact is flipped, and the artifact and its manifest are dropped into the registry (manifest last,
atomically, as the registry itself writes). The worker must log the refusal, keep running, and raise
the next day's burst alert with ``v1``.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from service.brokers import KafkaCluster
from service.cli import main
from service.plant_file import load_plant
from service.simulator.engine import PlantSimulator
from service.simulator.faults import FaultKind, FaultSpec, resolve_faults
from tests.integration.harness import WorkerProcess, consume_all, produce, records, wait_for
from tests.integration.streams_fixtures import create_topics, unique_topics

START_MS = 1_767_564_000_000  # 2026-01-05T06:00+09:00, a Monday day shift of the demo plant
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
BURST_AT_MS = HOUR_MS  # into each scored day
BURST_MS = 10 * 60_000


def _day(start_ms: int, hours: int, seed: int, burst: bool) -> list[tuple[bytes, bytes]]:
    plant = load_plant(None)
    faults = [FaultSpec(FaultKind.ANOMALY_BURST, "M01", None, BURST_AT_MS, BURST_MS)] if burst else []
    simulator = PlantSimulator(
        plant, seed=seed, start_ms=start_ms, faults=resolve_faults(faults, plant, start_ms)
    )
    return [
        (f"{record['tenant']}/{record['machine']}".encode(), orjson.dumps(record))
        for record in simulator.events(start_ms + hours * HOUR_MS)
    ]


def _train(history: list[tuple[bytes, bytes]], workdir: Path, registry: Path) -> None:
    path = workdir / "history.jsonl"
    path.write_bytes(b"\n".join(value for _, value in history) + b"\n")
    assert main(["train", "--telemetry", str(path), "--registry", str(registry), "--machine", "M01"]) == 0


def _anomaly_alerts(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [
        alert
        for alert in records(consume_all(bootstrap, topic, idle_s=2))
        if alert["kind"] == "anomaly" and alert["status"] == "open"
    ]


def _started_ms(alert: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(alert["started_at"])).timestamp() * 1000


def _in_burst(alert: dict[str, Any], day_ms: int) -> bool:
    return day_ms + BURST_AT_MS <= _started_ms(alert) <= day_ms + BURST_AT_MS + BURST_MS


def test_worker_picks_up_a_new_model_and_refuses_a_tampered_one(
    apache_kafka: KafkaCluster, tmp_path: Path
) -> None:
    bootstrap = apache_kafka.bootstrap_servers
    topics = unique_topics()
    create_topics(bootstrap, topics)
    registry = tmp_path / "registry"
    registry.mkdir()
    worker = WorkerProcess(
        bootstrap,
        topics,
        tmp_path,
        extra_env={"LINEPULSE_MODEL_REGISTRY": str(registry), "LINEPULSE_MODEL_RELOAD_S": "0.5"},
    )
    with worker:
        # No model yet: a day with a burst is processed without any anomaly alert.
        day1 = START_MS + DAY_MS
        sent = produce(bootstrap, topics["telemetry"], _day(day1, 2, seed=4, burst=True))
        wait_for(lambda: worker.applied_events() >= sent, 180, "day 1 applied")
        _train(_day(START_MS, 6, seed=3, burst=False), tmp_path, registry)  # v1, while the worker runs
        assert not _anomaly_alerts(bootstrap, topics["alerts"]), "an alert before any model was registered"

        day2 = START_MS + 2 * DAY_MS
        produce(bootstrap, topics["telemetry"], _day(day2, 3, seed=5, burst=True))
        found: list[dict[str, Any]] = []

        def v1_alert_on(day_ms: int) -> bool:
            found[:] = [a for a in _anomaly_alerts(bootstrap, topics["alerts"]) if _in_burst(a, day_ms)]
            return bool(found)

        wait_for(
            lambda: v1_alert_on(day2), 180, f"an anomaly alert during day 2's burst (log {worker.log_path})"
        )
        evidence = found[0]["evidence"]
        assert found[0]["machine"] == "M01"
        assert evidence["model"] == "demo.M01" and evidence["model_version"] == "v1"
        assert evidence["score"] > evidence["threshold"] and len(evidence["top_features"]) == 3

        # v2 trained in a copy of the registry, tampered, then dropped in: artifact first, manifest last.
        staging = tmp_path / "staging"
        shutil.copytree(registry, staging)
        _train(_day(START_MS + 3 * DAY_MS, 6, seed=6, burst=False), tmp_path, staging)
        artifact = bytearray((staging / "demo.M01" / "v2.skops").read_bytes())
        artifact[len(artifact) // 2] ^= 0x01
        (registry / "demo.M01" / "v2.skops").write_bytes(bytes(artifact))
        manifest = staging / "demo.M01" / "manifest.json"
        assert json.loads(manifest.read_text())["latest"] == "v2"
        shutil.copyfile(manifest, registry / "demo.M01" / "manifest.tmp")
        os.replace(registry / "demo.M01" / "manifest.tmp", registry / "demo.M01" / "manifest.json")

        day4 = START_MS + 4 * DAY_MS
        produce(bootstrap, topics["telemetry"], _day(day4, 3, seed=7, burst=True))
        wait_for(
            lambda: v1_alert_on(day4), 180, f"an anomaly alert during day 4's burst (log {worker.log_path})"
        )
        assert all(alert["evidence"]["model_version"] == "v1" for alert in found)
        worker.assert_alive()
        log = worker.log_path.read_text(errors="replace")
        assert "anomaly model demo.M01 not (re)loaded" in log
        assert "v2.skops: refused: SHA-256 mismatch" in log
        assert worker.get("/health") == {"status": "ok"}
    # Every anomaly alert of the run names v1: the tampered v2 never scored.
    assert {a["evidence"]["model_version"] for a in _anomaly_alerts(bootstrap, topics["alerts"])} == {"v1"}
