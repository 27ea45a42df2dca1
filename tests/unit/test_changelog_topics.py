"""The start-up partition check knows the worker's table changelogs by the names Faust gives them."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from service.plant_file import load_demo_plant
from service.settings import Settings
from service.worker_metrics import WorkerMetrics
from streams.app import create_stream
from streams.topics import TABLES, TopicNames, changelog_topic, durability_config, topic_specs


def test_the_checked_changelogs_are_those_of_the_worker_tables(tmp_path: Path) -> None:
    settings = Settings(app_id="pc-check", data_dir=tmp_path)
    stream = create_stream(
        settings.stream_config("127.0.0.1:1", 3), load_demo_plant(), WorkerMetrics(CollectorRegistry())
    )
    changelogs = {table.changelog_topic.get_topic_name() for table in stream.app.tables.values()}
    assert changelogs == {changelog_topic("pc-check", table) for table in TABLES}


def test_changelogs_are_checked_copartitioned_with_telemetry_never_created() -> None:
    names = TopicNames()
    assert all(spec.create for spec in topic_specs(names, 3, 1))
    extra = topic_specs(names, 3, 1, app_id="a")[len(topic_specs(names, 3, 1)) :]
    assert [(spec.name, spec.copartitioned_with, spec.create) for spec in extra] == [
        ("a-machine-state-changelog", "telemetry", False),
        ("a-line-view-changelog", "telemetry", False),
    ]


def test_three_replicas_need_two_in_sync_and_fewer_keep_the_default() -> None:
    names = TopicNames()
    for spec in topic_specs(names, 3, 3):
        if spec.create:
            assert spec.config["min.insync.replicas"] == "2", spec.name
    assert not any("min.insync.replicas" in spec.config for spec in topic_specs(names, 3, 2))
    assert durability_config(1) == durability_config(2) == {}


def test_the_tables_changelogs_are_created_with_the_same_durability(tmp_path: Path) -> None:
    for replication, expected in ((3, {"min.insync.replicas": "2"}), (1, {})):
        settings = Settings(
            app_id=f"pc-durable-{replication}", data_dir=tmp_path, replication_factor=replication
        )
        stream = create_stream(
            settings.stream_config("127.0.0.1:1", 3), load_demo_plant(), WorkerMetrics(CollectorRegistry())
        )
        for table in stream.app.tables.values():
            # Faust creates the changelog with these configs (faust.tables.base: config=...).
            assert dict(table.changelog_topic.config or {}) == expected, (replication, table.name)
