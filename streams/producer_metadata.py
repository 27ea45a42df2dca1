"""Keeping every topic the worker writes in its producer's metadata, so no queued record loses its leader.

aiokafka's client fetches metadata for *all* topics while its list of wanted topics is empty, and only
for the wanted ones once any topic is in it. A send adds its topic to that list only when the topic
is missing from the cached metadata (``AIOKafkaClient._wait_on_metadata``). So the first send to a
topic created after the producer's last full fetch (a new app id's table changelog, which Faust
creates at start, not yet visible to the broker answering) narrows every later refresh to that one
topic: the topics the worker had been writing, known from the full fetch, drop out of the cache. A
record already queued for one of them then has no leader; the sender asks for metadata again and
again (without it: "Topic ... not found in cluster metadata" is logged for the new topic), and the
record waits until it expires, ``producer_request_timeout`` (20 minutes) later. The outbox waits for
that record's acknowledgement before its agent sends anything else, so nothing adds the topic back:
a replay worker stuck at its first batch (tests/integration/test_producer_metadata.py).

Pinning every topic the worker writes before its first send (on each assignment: records are sent
only for assigned partitions) makes the list complete from the start, so a refresh never drops one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Final

__all__ = ["AIOKAFKA_ADD_TOPIC_SHA256", "pin_topics", "producer_client"]

log = logging.getLogger(__name__)

# sha256 of inspect.getsource(aiokafka.client.AIOKafkaClient.add_topic): adds a topic to the ones
# every metadata refresh asks for (tests/unit/test_producer_metadata.py checks the pin still holds).
AIOKAFKA_ADD_TOPIC_SHA256: Final = "b054eda662913f089f7620eb15d2151c81ecae4b95bc63daa7be19e876833325"


def producer_client(app: Any) -> Any:
    """The aiokafka client behind a started Faust app's producer, or None."""
    try:
        return app.producer._producer.client
    except Exception:  # another transport, or not started: pin_topics logs that it cannot pin
        return None


def pin_topics(client: Any, topics: Iterable[str]) -> None:
    """Have every metadata refresh of ``client`` ask for ``topics`` (all at once, with no await in
    between, so no refresh can narrow the list to part of them)."""
    add_topic = getattr(client, "add_topic", None)
    if add_topic is None:
        log.warning(
            "cannot pin the topics in the producer's metadata (%r): a record queued when a new topic "
            "is first sent to may wait for its leader until it expires",
            client,
        )
        return
    wanted: set[str] = getattr(client, "_topics", set())
    for topic in topics:
        if topic not in wanted:
            add_topic(topic)  # its refresh runs in the background: nothing to wait for here
