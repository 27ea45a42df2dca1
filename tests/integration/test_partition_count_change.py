"""Raising the telemetry partition count stops the worker's start with every topic that must follow.

On Apache Kafka: a worker runs on 3 partitions, stops; telemetry is raised to 6. The next start
names, in one ``TopicMismatch`` line, ``kpis-by-line``, ``control`` and both table changelogs (Faust
would otherwise report ready, then fail with ``AssertionError('Unrecognized partition')`` having
applied nothing), and says what to do. With kpis-by-line and control at 6 the changelogs are still
named; a new app id, as the message and docs/operations.md say, starts and rebuilds the state.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewPartitions

from service.brokers import KafkaCluster
from service.cli import main
from streams.topics import TABLES, changelog_topic
from tests.integration.harness import WorkerProcess, produce, wait_for
from tests.integration.streams_fixtures import create_topics, simulated_messages, unique_topics


def test_a_raised_telemetry_partition_count_names_every_topic_that_must_follow(
    apache_kafka: KafkaCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bootstrap = apache_kafka.bootstrap_servers
    topics = unique_topics()
    create_topics(bootstrap, topics, partitions=3)
    valid = simulated_messages(300)
    produce(bootstrap, topics["telemetry"], valid)
    app_id = f"it-{uuid.uuid4().hex[:10]}"
    with WorkerProcess(bootstrap, topics, tmp_path, app_id=app_id) as worker:
        wait_for(lambda: worker.applied_events() >= len(valid), 120, "the events applied")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="linepulse-tests")
    try:
        admin.create_partitions({topics["telemetry"]: NewPartitions(6)})
    finally:
        admin.close()
    changelogs = [changelog_topic(app_id, table) for table in TABLES]

    def failed_start(names: dict[str, str]) -> str:
        for name, topic in names.items():
            monkeypatch.setenv(f"LINEPULSE_TOPIC_{name.upper()}", topic)
        code = main(["worker", "--bootstrap-servers", bootstrap, "--app-id", app_id, "--web-port", "0"])
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("linepulse: error: "), err
        assert f"topic {names['telemetry']!r} has 6 partitions" in err
        return err

    err = failed_start(topics)
    for name in [topics["kpis_by_line"], topics["control"], *changelogs]:
        assert f"{name!r} has 3 partitions" in err, err
    assert f"recreate {topics['control']!r} with 6 partitions" in err
    assert "new --app-id" in err and "Changing the partition count" in err

    # kpis-by-line and control recreated with 6 (under new names: the worker creates them so).
    recreated = {**topics, "kpis_by_line": f"{topics['kpis_by_line']}-6", "control": f"{topics['control']}-6"}
    err = failed_start(recreated)
    assert all(f"{name!r} has 3 partitions" in err for name in changelogs), err
    assert "kpis-by-line" not in err.replace(app_id, "") and "recreate" not in err

    # The way out: a new app id builds its state from the history, on all six partitions.
    with WorkerProcess(bootstrap, recreated, tmp_path, app_id=f"{app_id}-p6", partitions=6) as worker:
        wait_for(lambda: worker.applied_events() >= len(valid), 120, "the events applied again")
        worker.assert_alive()
