"""``linepulse baseline reset --at TIME`` makes a worker replay repeat an operator's reset exactly.

The operator sends two resets with ``--at`` (one signal at an event time a message ends on, every
series at a time inside a message), then the stream is replayed to the worker (in one variant,
killed with SIGKILL before the replay and again half-way). A command with a bad ``at_ms`` is
dead-lettered, and one far ahead is listed as waiting in ``/api/machines``. The alert and KPI
records on the topics must be those ``analyze --baseline-reset`` writes for the same lines and
resets: the worker held the resets in the machine's state and applied each where ``analyze`` does.
Apache Kafka only: nothing here depends on the broker's implementation (test_baseline_reset.py
covers the control path on both brokers).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from service.baseline import parse_scheduled_reset
from service.brokers import KafkaCluster
from service.cli import main
from service.plant_file import load_plant
from tests.integration.harness import WorkerProcess, consume_all, produce, records, wait_for
from tests.integration.streams_fixtures import analyze_lines, create_topics, unique_topics
from tests.integration.test_baseline_reset import BASE, KEY, PLANT, SIGNAL, _samples


def _telemetry(t0: int) -> list[bytes]:
    """Running from ``t0``; 480 messages of 10 readings, 6 sigma higher from the 61st on."""
    rng = np.random.default_rng(7)
    start = [orjson.dumps({**BASE, "ts": t0, "kind": "state", "state": "running"})]
    return start + [value for _, value in _samples(t0, range(480), rng, shifted_from=60)]


@pytest.mark.parametrize("killed", [False, True], ids=["uninterrupted", "kill9"])
def test_a_replay_with_reset_at_gives_the_records_analyze_writes(
    apache_kafka: KafkaCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    killed: bool,
) -> None:
    """``killed``: SIGKILL once the resets wait (the control records may be read again), and again
    between the two resets' times: they come back from the machine's state in its changelog."""
    bootstrap = apache_kafka.bootstrap_servers
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_bytes(orjson.dumps(PLANT))  # JSON is YAML
    topics = unique_topics()
    create_topics(bootstrap, topics)
    t0 = (int(time.time() * 1000) - 3 * 3_600_000) // 3_600_000 * 3_600_000
    values = _telemetry(t0)
    signal_at = t0 + 1_200_000  # the newest event time of message 121 exactly
    all_at = t0 + 3_000_500  # inside message 301's readings
    signal_time = datetime.fromtimestamp(signal_at / 1000, tz=UTC).astimezone().isoformat()
    for name, topic in topics.items():
        monkeypatch.setenv(f"LINEPULSE_TOPIC_{name.upper()}", topic)
    common = ["--config", str(plant_file), "--bootstrap-servers", bootstrap]

    with WorkerProcess(bootstrap, topics, tmp_path, config=plant_file) as worker:
        # The operator schedules the resets before replaying: one in local time with its offset.
        argv = ["baseline", "reset", "--machine", "acme/M01", "--signal", SIGNAL, "--at", signal_time]
        assert main([*argv, *common]) == 0
        assert orjson.loads(capsys.readouterr().out)["at_ms"] == signal_at
        assert main(["baseline", "reset", "--machine", "M01", "--at", str(all_at), *common]) == 0
        wait_for(
            lambda: worker.log_tail(400).count("waiting for the machine's telemetry") == 2,
            60,
            "both resets waiting in the machine's state",
        )
        # A command whose at_ms is not epoch milliseconds goes to the dead-letter topic, naming it.
        bad = {"v": 1, "command": "baseline_reset", "tenant": "acme", "machine": "M01", "ts": t0}
        produce(bootstrap, topics["control"], [(KEY, orjson.dumps({**bad, "at_ms": signal_time}))])

        def dead_lettered() -> list[dict[str, bytes]]:
            return [dict(m.headers) for m in consume_all(bootstrap, topics["dead_letters"], idle_s=1.5)]

        wait_for(lambda: bool(dead_lettered()), 60, "the bad command dead-lettered")
        [headers] = dead_lettered()
        assert (headers["linepulse.error.code"], headers["linepulse.error.field"]) == (
            b"invalid_schema",
            b"at_ms",
        )
        parts = [values[:200], values[200:]] if killed else [values]
        for part in parts:
            if killed:
                worker.kill9()
                worker.start()
            produce(bootstrap, topics["telemetry"], [(KEY, value) for value in part])
            applied = values.index(part[-1]) + 1
            wait_for(lambda n=applied: worker.applied_events() >= n, 120, f"{applied} messages applied")
        found: dict[str, list[dict[str, Any]]] = {}

        def settled() -> bool:
            before = dict(found)
            for kind in ("alerts", "kpis"):
                found[kind] = list(records(consume_all(bootstrap, topics[kind], idle_s=1.5)))
            return found == before

        wait_for(settled, 60, "the alert and KPI records all on their topics")
        # A reset far ahead (planned, or a wrong offset) waits where it can be seen: the command
        # says so, and /api/machines lists it until the machine's telemetry gets there.
        ahead_ms = int(time.time() * 1000) + 2 * 86_400_000
        assert main(["baseline", "reset", "--machine", "M01", "--at", str(ahead_ms), *common]) == 0
        assert "h ahead of this computer's clock" in capsys.readouterr().err

        def waiting() -> list[dict[str, Any]]:
            return list(worker.get("/api/machines")["machines"][0]["baseline_resets_waiting"])

        wait_for(lambda: len(waiting()) == 1, 60, "the reset far ahead listed as waiting")
        [far] = waiting()
        assert datetime.fromisoformat(far["at"]).timestamp() * 1000 == ahead_ms
        worker.assert_alive()
        log = worker.log_tail(400)
    assert "already at" not in log, "both resets were sent before the replay got to them"
    assert log.count("baseline reset on acme/M01 at event time") == 2, "each applied once, after kills too"

    resets = [
        parse_scheduled_reset(load_plant(plant_file), f"acme/M01:{SIGNAL}@{signal_time}"),
        parse_scheduled_reset(load_plant(plant_file), f"M01@{all_at}"),
    ]
    offline = analyze_lines(values, tmp_path, load_plant(plant_file), resets=resets)
    assert offline["summary"]["baseline_resets"] == 2
    assert found["alerts"] == offline["alerts"]
    assert found["kpis"] == [kpi for kpi in offline["kpis"] if kpi["complete"]]
    resolved = [a for a in found["alerts"] if (a["resolution"] or {}).get("by") == "baseline_reset"]
    assert resolved, "the reset resolved the drift alert"
    # The resets decide the records: without them analyze writes other alerts.
    assert analyze_lines(values, tmp_path, load_plant(plant_file))["alerts"] != found["alerts"]
