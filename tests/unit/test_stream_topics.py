"""The stream names the topics it reads and writes, so the service's per-topic counters cover them all."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from service.plant_file import load_demo_plant
from service.settings import Settings
from service.worker_metrics import WorkerMetrics
from streams.app import create_stream
from streams.topics import topic_specs


def test_sources_are_every_topic_an_agent_takes_batches_from(tmp_path: Path) -> None:
    settings = Settings(
        app_id="st",
        data_dir=tmp_path,
        topic_telemetry="t",
        topic_kpis="k",
        topic_control="c",
        topic_kpis_by_line="kl",
    )
    names = settings.topics
    stream = create_stream(
        settings.stream_config("127.0.0.1:1", 3), load_demo_plant(), WorkerMetrics(CollectorRegistry())
    )
    # The line view takes batches from kpis and kpis-by-line: a fenced batch there is counted too.
    assert stream.sources == ("c", "k", "kl", "t")
    # Every topic linepulse creates or checks is read, written, or both; none is left without a counter.
    specs = {spec.name for spec in topic_specs(names, 3, 1, app_id="st")}
    assert specs == set(stream.sources) | set(stream.written)
    assert {"st-machine-state-changelog", "st-line-view-changelog", "k", "kl"} <= set(stream.written)
