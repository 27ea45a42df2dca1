"""A committed offset is always in a machine state on the changelog (Apache Kafka: Tansu enforces no
per-topic ``max.message.bytes``, the limit used here to make the broker refuse the state writes).

The changelog is what a restarted worker, or the next owner of a partition, recovers the machine
states from. If an offset were committed whose state write the broker refused (or never answered),
that worker would skip the message: counted nowhere, without an error. So while the changelog
refuses the writes, no offset may be committed past a message whose machine's state on the
changelog has not applied it; once the topic takes them again, the states on the changelog carry
every message.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

from service.brokers import KafkaCluster
from streams.processing import decode_state
from streams.topics import DEAD_LETTER_MAX_MESSAGE_BYTES
from tests.integration.harness import WorkerProcess, consume_all, produce, wait_for
from tests.integration.kafka_admin import committed_offsets, committed_total, set_max_message_bytes
from tests.integration.streams_fixtures import create_topics, simulated_messages, unique_topics

VALID = 4_000
PARTITIONS = 3


def _changelog_states(bootstrap: str, changelog: str) -> dict[bytes, dict[str, int]]:
    """The newest state of each machine on the changelog: its applied offsets per source partition."""
    newest: dict[bytes, dict[str, int]] = {}
    for message in consume_all(bootstrap, changelog):
        newest[message.key] = decode_state(message.value).applied
    return newest


def _uncovered(bootstrap: str, telemetry: str, changelog: str, committed: dict[int, int]) -> list[str]:
    """Telemetry messages below their partition's committed offset that no changelog state applied."""
    states = _changelog_states(bootstrap, changelog)
    missing = []
    for message in consume_all(bootstrap, telemetry):
        if message.offset >= committed[message.partition]:
            continue
        applied = states.get(message.key, {}).get(f"{telemetry}:{message.partition}", -1)
        if applied < message.offset:
            missing.append(f"{message.partition}@{message.offset} ({message.key!r}, state at {applied})")
    return missing


def _events_on_changelog(bootstrap: str, changelog: str) -> int:
    counts: dict[bytes, int] = defaultdict(int)
    for message in consume_all(bootstrap, changelog):
        counts[message.key] = decode_state(message.value).totals.events
    return sum(counts.values())


def test_no_offset_is_committed_past_a_state_the_changelog_refused(
    apache_kafka: KafkaCluster, tmp_path: Path
) -> None:
    bootstrap = apache_kafka.bootstrap_servers
    topics = unique_topics()
    create_topics(bootstrap, topics, PARTITIONS)
    messages = simulated_messages(VALID, seed=23)
    with WorkerProcess(bootstrap, topics, tmp_path, partitions=PARTITIONS) as worker:
        changelog = f"{worker.app_id}-machine-state-changelog"
        set_max_message_bytes(bootstrap, changelog, 300)  # far too small for a machine state
        produce(bootstrap, topics["telemetry"], messages)

        def refused_or_committed() -> bool:
            return worker.send_stuck() or committed_total(bootstrap, worker.app_id, topics["telemetry"]) > 0

        wait_for(refused_or_committed, 120, "the worker to be refused a state write (or to commit)")
        time.sleep(5)  # several commit intervals
        committed = committed_offsets(bootstrap, worker.app_id, topics["telemetry"])
        missing = _uncovered(bootstrap, topics["telemetry"], changelog, committed)
        assert not missing, f"committed {committed}, but no state on the changelog applied {missing[:5]}"
        assert worker.metric("linepulse_send_stuck") == 1.0
        assert worker.metric("linepulse_ready") == 0.0
        assert worker.metric(f'linepulse_send_failures_total{{topic="{changelog}"}}') > 0

        set_max_message_bytes(bootstrap, changelog, DEAD_LETTER_MAX_MESSAGE_BYTES)
        wait_for(lambda: worker.applied_events() >= VALID, 180, f"all {VALID} events after the fix")
        wait_for(
            lambda: committed_total(bootstrap, worker.app_id, topics["telemetry"]) == VALID,
            30,
            "every offset committed",
        )
        assert worker.metric("linepulse_send_stuck") == 0.0
        committed = committed_offsets(bootstrap, worker.app_id, topics["telemetry"])
        totals = worker.totals()
        worker.kill9()  # no final flush or commit: what a restart finds is what was acknowledged

    assert _uncovered(bootstrap, topics["telemetry"], changelog, committed) == []
    assert _events_on_changelog(bootstrap, changelog) == VALID
    # Every offset is committed, so a restart re-reads nothing: its states come from the changelog.
    with WorkerProcess(bootstrap, topics, tmp_path, app_id=worker.app_id, partitions=PARTITIONS) as again:
        wait_for(lambda: again.applied_events() == VALID, 60, "the recovered states to show every event")
        assert again.totals() == totals
