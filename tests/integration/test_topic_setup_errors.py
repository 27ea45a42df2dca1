"""Topics that cannot be used stop ``worker`` and ``baseline reset`` with one line, not a traceback.

A control topic whose partition count differs from telemetry's would send commands to the wrong
worker; on a real broker (Apache Kafka and Tansu) both commands name the topics and the counts.
"""

from __future__ import annotations

import pytest

from service.brokers import BrokerEndpoint
from service.cli import main
from tests.integration.conftest import TopicFactory
from tests.integration.streams_fixtures import unique_topics


@pytest.mark.parametrize(
    "argv",
    [
        ["baseline", "reset", "--machine", "M01"],
        ["worker", "--web-port", "0"],
    ],
    ids=["baseline-reset", "worker"],
)
def test_control_topic_with_other_partition_count_is_one_error_line(
    argv: list[str],
    broker: BrokerEndpoint,
    fresh_topic: TopicFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bootstrap = broker.bootstrap_servers
    for name, topic in unique_topics().items():  # nothing else this test creates is shared
        monkeypatch.setenv(f"LINEPULSE_TOPIC_{name.upper()}", topic)
    telemetry = fresh_topic(bootstrap, partitions=3, prefix="mm-telemetry")
    control = fresh_topic(bootstrap, partitions=1, prefix="mm-control")
    monkeypatch.setenv("LINEPULSE_TOPIC_TELEMETRY", telemetry)
    monkeypatch.setenv("LINEPULSE_TOPIC_CONTROL", control)

    code = main([*argv, "--bootstrap-servers", bootstrap])

    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("linepulse: error: "), err
    assert bootstrap in err and repr(control) in err and repr(telemetry) in err
    assert "1 partitions" in err and "has 3" in err
