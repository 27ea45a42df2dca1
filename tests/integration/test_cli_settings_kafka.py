"""With ``LINEPULSE_BOOTSTRAP_SERVERS`` and ``LINEPULSE_TOPIC_TELEMETRY`` exported (README: "Point it
at your own Kafka"), ``simulate`` produces to that topic and ``train`` learns from it, no flags needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.brokers import BrokerEndpoint
from service.cli import main
from tests.integration.conftest import TopicFactory
from tests.integration.harness import consume_all


def test_simulate_and_train_use_the_kafka_settings(
    broker: BrokerEndpoint,
    fresh_topic: TopicFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bootstrap = broker.bootstrap_servers
    topic = fresh_topic(bootstrap, partitions=2)
    monkeypatch.setenv("LINEPULSE_BOOTSTRAP_SERVERS", bootstrap)
    monkeypatch.setenv("LINEPULSE_TOPIC_TELEMETRY", topic)
    monkeypatch.delenv("LINEPULSE_PLANT_CONFIG", raising=False)

    simulate = ["simulate", "--start", "2026-01-05T00:00:00Z", "--duration", "2h", "--as-fast-as-possible"]
    assert main(simulate) == 0
    err = capsys.readouterr().err
    written = int(err.split("linepulse simulate: ", 1)[1].split(" records", 1)[0])
    assert written > 1000 and f"into Kafka topic {topic!r} at {bootstrap}" in err
    assert len(consume_all(bootstrap, topic, idle_s=2.0)) == written

    registry = tmp_path / "registry"
    assert main(["train", "--machine", "M01", "--registry", str(registry)]) == 0
    manifest = json.loads((registry / "demo.M01" / "manifest.json").read_text())
    training = manifest["versions"][0]["metadata"]["training"]
    assert training["source"] == f"kafka:{topic}"
    assert training["rows"] > 1000


def test_simulate_to_a_topic_the_cluster_does_not_have_says_so(
    broker: BrokerEndpoint,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """It used to wait a minute for the topic's metadata and die with a KafkaTimeoutError traceback."""
    monkeypatch.setenv("LINEPULSE_BOOTSTRAP_SERVERS", broker.bootstrap_servers)
    monkeypatch.delenv("LINEPULSE_PLANT_CONFIG", raising=False)
    simulate = ["simulate", "--duration", "1h", "--as-fast-as-possible", "--topic", "no-such-topic"]
    assert main(simulate) == 2  # a usage error, as every other refused argument
    err = capsys.readouterr().err
    assert f"--topic: 'no-such-topic' does not exist at {broker.bootstrap_servers}" in err
    assert "Traceback" not in err
