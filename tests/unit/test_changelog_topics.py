"""The start-up partition check knows the worker's table changelogs by the names Faust gives them."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from service.metrics import WorkerMetrics
from service.plant_file import load_demo_plant
from service.settings import Settings
from streams.app import create_stream
from streams.topics import TABLES, TopicNames, changelog_topic, topic_specs


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
