"""A worker that lost its partitions must not write their states again (Apache Kafka: Tansu enforces
no per-topic ``max.message.bytes``, the limit used here to make the broker refuse state writes).

Worker A applies a batch whose changelog writes the broker refuses, so A retries them. A is then
frozen (SIGSTOP: no heartbeat) between two retries until the group evicts it; the changelog takes
writes again, and worker B takes every partition over, applies A's batch again from the committed
offset and more messages after it, and writes their states. Then A wakes up (SIGCONT). Without the
fence, A's retry of its stale states lands after B's, so the changelog's newest state of those
machines lacks B's later messages, and a recovery (a restart, the next rebalance) loses them: the
sums of events on the changelog and on the workers fall short of the messages sent. With it, A
sends nothing more for the lost partitions, does not ack that batch, counts it in
``linepulse_batches_fenced_total`` and goes on: it rejoins the group and shares the partitions
with B.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from service.brokers import KafkaCluster
from streams.processing import decode_state
from streams.topics import DEAD_LETTER_MAX_MESSAGE_BYTES
from tests.integration.harness import WorkerProcess, consume_all, produce, wait_for
from tests.integration.kafka_admin import committed_total, set_max_message_bytes
from tests.integration.streams_fixtures import create_topics, simulated_messages, unique_topics

FIRST, STUCK, AFTER = 2_000, 300, 700
TOTAL = FIRST + STUCK + AFTER
SESSION_TIMEOUT_S = 6  # WorkerProcess's LINEPULSE_SESSION_TIMEOUT_S


def _newest_events(bootstrap: str, changelog: str) -> dict[bytes, int]:
    """Each machine's event count in its newest state on the changelog (what a recovery takes)."""
    newest: dict[bytes, int] = {}
    for message in consume_all(bootstrap, changelog):
        newest[message.key] = decode_state(message.value).totals.events
    return newest


def _pause_between_retries(worker: WorkerProcess, changelog: str) -> None:
    """Freeze the worker in a backoff of its refused writes to ``changelog``, not while a retry is
    with its producer: the producer would still deliver that after the worker wakes, and only Kafka
    transactions fence that (streams.ownership). Retries follow 0.5, 1, 2, 4, 8 s apart: the one
    after 4 s is refused 7.5 s in, the next one comes 8 s after it."""
    refused = f'linepulse_send_failures_total{{topic="{changelog}"}}'
    time.sleep(4.5)
    before = worker.metric(refused)
    wait_for(lambda: worker.metric(refused) > before, 30, "the next retry to be refused", interval_s=0.05)
    worker.pause()


def test_a_worker_evicted_while_retrying_does_not_overwrite_the_new_owners_states(
    apache_kafka: KafkaCluster, tmp_path: Path
) -> None:
    bootstrap = apache_kafka.bootstrap_servers
    topics = unique_topics()
    create_topics(bootstrap, topics)
    telemetry = topics["telemetry"]
    messages = simulated_messages(TOTAL, seed=31)
    produce(bootstrap, telemetry, messages[:FIRST])
    with WorkerProcess(bootstrap, topics, tmp_path) as a:
        group, changelog = a.app_id, f"{a.app_id}-machine-state-changelog"
        wait_for(lambda: committed_total(bootstrap, group, telemetry) == FIRST, 180, "A to commit part one")

        set_max_message_bytes(bootstrap, changelog, 300)  # far too small for a machine state
        produce(bootstrap, telemetry, messages[FIRST : FIRST + STUCK])
        wait_for(a.send_stuck, 120, "A to be refused its state writes")
        assert committed_total(bootstrap, group, telemetry) == FIRST
        _pause_between_retries(a, changelog)
        try:
            time.sleep(SESSION_TIMEOUT_S + 4)  # the coordinator evicts A: no heartbeat for a session
            set_max_message_bytes(bootstrap, changelog, DEAD_LETTER_MAX_MESSAGE_BYTES)
            with WorkerProcess(bootstrap, topics, tmp_path, app_id=group) as b:
                produce(bootstrap, telemetry, messages[FIRST + STUCK :])
                wait_for(lambda: b.applied_events() == TOTAL, 180, "B to apply every message")
                wait_for(lambda: committed_total(bootstrap, group, telemetry) == TOTAL, 60, "B to commit all")
                assert sum(_newest_events(bootstrap, changelog).values()) == TOTAL
                a.resume()

                # A sends its held records or drops them; either way it is not stuck any more.
                wait_for(lambda: not a.send_stuck(), 120, "A to be done with its stuck batch")
                time.sleep(3)  # anything A still had for the producer
                newest = _newest_events(bootstrap, changelog)
                assert sum(newest.values()) == TOTAL, (
                    f"the changelog's newest states hold {sum(newest.values())} of {TOTAL} events: the "
                    "evicted worker's stale states landed after the new owner's"
                )
                fenced = a.metric(f'linepulse_batches_fenced_total{{topic="{telemetry}"}}')
                assert fenced >= 1, "A was not told it lost its partitions"

                def shared() -> bool:  # A goes on: it rejoins, and the two split the machines
                    a.assert_alive()
                    b.assert_alive()
                    shown_a, shown_b = set(a.totals()), set(b.totals())
                    events = a.applied_events() + b.applied_events()
                    return bool(shown_a) and not shown_a & shown_b and events == TOTAL

                wait_for(shared, 120, f"A and B to share the machines, {TOTAL} events in all")
        finally:
            a.resume()
    assert committed_total(bootstrap, group, telemetry) == TOTAL


def _line_revisions_lost(bootstrap: str, changelog: str) -> list[tuple[bytes, str, str]]:
    """(line, window, machine) entries some line state on the changelog held that the line's newest
    state (what a recovery takes) lacks or holds at an older revision."""
    seen: dict[tuple[bytes, str, str], int] = {}
    newest: dict[bytes, dict[str, Any]] = {}
    for message in consume_all(bootstrap, changelog):
        state = newest[message.key] = orjson.loads(message.value)
        for window, entry in state["windows"].items():
            for machine, folded in entry["machines"].items():
                key = (message.key, window, machine)
                seen[key] = max(seen.get(key, -1), folded["revision"])
    lost = []
    for (line, window, machine), revision in seen.items():
        folded = newest[line]["windows"].get(window, {}).get("machines", {}).get(machine)
        if folded is None or folded["revision"] < revision:
            lost.append((line, window, machine))
    return lost


def test_a_worker_evicted_while_retrying_does_not_overwrite_the_new_owners_line_states(
    apache_kafka: KafkaCluster, tmp_path: Path
) -> None:
    """The same for the line view (found in review: its sends were not fenced). A is refused its
    line-view changelog writes, frozen, evicted; B takes over and folds on. Without the fence A's
    retried line state lands last, lacking machines B had folded, and a recovery drops them from
    the line's figures."""
    first, stuck, after = 2_000, 6_000, 1_000
    bootstrap = apache_kafka.bootstrap_servers
    topics = unique_topics()
    create_topics(bootstrap, topics)
    telemetry = topics["telemetry"]
    messages = simulated_messages(first + stuck + after, seed=31)
    produce(bootstrap, telemetry, messages[:first])
    with WorkerProcess(bootstrap, topics, tmp_path) as a:
        group, changelog = a.app_id, f"{a.app_id}-line-view-changelog"
        wait_for(lambda: committed_total(bootstrap, group, telemetry) == first, 180, "A to commit part one")
        set_max_message_bytes(bootstrap, changelog, 300)  # far too small for a line state
        produce(bootstrap, telemetry, messages[first : first + stuck])
        wait_for(a.send_stuck, 120, "A to be refused its line-state writes")
        _pause_between_retries(a, changelog)
        try:
            time.sleep(SESSION_TIMEOUT_S + 4)  # the coordinator evicts A
            set_max_message_bytes(bootstrap, changelog, DEAD_LETTER_MAX_MESSAGE_BYTES)
            with WorkerProcess(bootstrap, topics, tmp_path, app_id=group) as b:
                produce(bootstrap, telemetry, messages[first + stuck :])
                wait_for(lambda: b.applied_events() == len(messages), 180, "B to apply every message")
                assert _line_revisions_lost(bootstrap, changelog) == []
                a.resume()
                wait_for(lambda: not a.send_stuck(), 120, "A to be done with its stuck event")
                time.sleep(3)  # anything A still had for the producer
                lost = _line_revisions_lost(bootstrap, changelog)
                assert lost == [], f"the evicted worker's stale line states landed last: {lost[:5]}"
                fenced = a.metric(f'linepulse_batches_fenced_total{{topic="{topics["kpis_by_line"]}"}}')
                assert fenced >= 1, "A was not told it lost the line's partition"
                a.assert_alive()
        finally:
            a.resume()
