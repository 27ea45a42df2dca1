"""The producer-metadata pin (streams/producer_metadata.py) rests on aiokafka's ``add_topic``."""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

from aiokafka.client import AIOKafkaClient

from streams.producer_metadata import AIOKAFKA_ADD_TOPIC_SHA256, pin_topics


def test_aiokafka_add_topic_is_the_one_the_pin_was_written_for() -> None:
    source = inspect.getsource(AIOKafkaClient.add_topic)
    assert hashlib.sha256(source.encode()).hexdigest() == AIOKAFKA_ADD_TOPIC_SHA256


class _Client:
    def __init__(self) -> None:
        self._topics = {"kpis"}
        self.added: list[str] = []

    def add_topic(self, topic: str) -> Any:
        self.added.append(topic)
        self._topics.add(topic)


def test_pin_adds_only_the_topics_not_yet_asked_for() -> None:
    client = _Client()
    pin_topics(client, ["kpis", "alerts", "app-line-view-changelog"])
    assert client.added == ["alerts", "app-line-view-changelog"]
    pin_topics(client, ["alerts"])
    assert client.added == ["alerts", "app-line-view-changelog"]
