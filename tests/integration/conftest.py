"""Real brokers for the integration tests: Apache Kafka (1 or 3 KRaft nodes) and Tansu.

Under ``CI=true`` a broker that cannot start fails the tests that need it; on a developer machine a
missing tool (no java, no network for the jars) skips them with the reason, so nothing passes silently.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NoReturn, Protocol

import pytest

from service.brokers import (
    BrokerEndpoint,
    BrokerError,
    BrokerStartError,
    KafkaCluster,
    TansuBroker,
)

__all__ = ["TopicFactory"]

_HERE = Path(__file__).parent
BROKER_NAMES = ["apache-kafka", "tansu"]


class TopicFactory(Protocol):
    def __call__(
        self,
        bootstrap_servers: str,
        *,
        partitions: int = 1,
        replication: int = 1,
        config: Mapping[str, str] | None = None,
        prefix: str = "test",
    ) -> str: ...


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)


def _unavailable(what: str, exc: BrokerError) -> NoReturn:
    message = f"{what} could not start: {exc}"
    # A real start failure is a bug everywhere; a missing tool only excuses a skip off CI.
    if os.environ.get("CI") == "true" or isinstance(exc, BrokerStartError):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def apache_kafka() -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(1)
    try:
        cluster.start()
    except BrokerError as exc:
        _unavailable("Apache Kafka (1 node)", exc)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def tansu() -> Iterator[TansuBroker]:
    broker = TansuBroker()
    try:
        broker.start()
    except BrokerError as exc:
        _unavailable("Tansu", exc)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session", params=BROKER_NAMES)
def broker(request: pytest.FixtureRequest) -> BrokerEndpoint:
    """Runs each test once per broker; ids ``[apache-kafka]`` and ``[tansu]`` show in the log."""
    name: str = request.param
    running: KafkaCluster | TansuBroker = request.getfixturevalue(name.replace("-", "_"))
    return BrokerEndpoint(name=name, bootstrap_servers=running.bootstrap_servers)


@pytest.fixture(scope="module")
def kafka_cluster3() -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(3)
    try:
        cluster.start()
    except BrokerError as exc:
        _unavailable("Apache Kafka (3 nodes)", exc)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def fresh_topic(request: pytest.FixtureRequest) -> TopicFactory:
    """Creates topics with unique names, so tests never see each other's messages."""
    from kafka import KafkaAdminClient

    base = request.node.name.split("[")[0].removeprefix("test_").replace("_", "-")[:40]

    def create(
        bootstrap_servers: str,
        *,
        partitions: int = 1,
        replication: int = 1,
        config: Mapping[str, str] | None = None,
        prefix: str = base,
    ) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="linepulse-tests")
        try:
            admin.create_topics(
                {
                    name: {
                        "num_partitions": partitions,
                        "replication_factor": replication,
                        "configs": dict(config or {}),
                    }
                },
                wait_for_metadata=True,
            )
        finally:
            admin.close()
        return name

    return create
