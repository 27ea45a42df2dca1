"""A record the broker refuses never loses the batch around it (Apache Kafka: Tansu enforces no
per-topic ``max.message.bytes``, the limit these tests use to make the broker refuse a send).

While a KPI record or a dead letter is refused the worker retries it, says so (``/ready`` 503,
``linepulse_send_stuck`` 1, ``linepulse_send_failures_total``) and commits no offset past what it
applied; once the topic takes it again, the worker carries on by itself and every message counts,
exactly as ``analyze`` counts them. Stopped while stuck, it exits promptly, says why, and commits
nothing past what it applied.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from kafka.admin import KafkaAdminClient

from service.brokers import KafkaCluster
from streams.exceptions import TopicMismatch
from streams.topics import DEAD_LETTER_MAX_MESSAGE_BYTES, TopicNames, ensure_topics, topic_specs
from tests.integration.harness import WorkerProcess, consume_all, produce, records, wait_for
from tests.integration.kafka_admin import committed_total, set_max_message_bytes
from tests.integration.streams_fixtures import (
    analyze_lines,
    create_topics,
    kpi_identity,
    simulated_messages,
    unique_topics,
)

VALID = 4_000
KAFKA_DEFAULT_LIMIT = 1_048_588
COMPARED = ("events", "good", "scrap", "run_ms")


def _big_bad_message(size: int) -> tuple[bytes, bytes]:
    """A sensor event whose unit is ``size`` bytes long: over max_payload_bytes, so dead-lettered."""
    ids = {"v": 1, "tenant": "demo", "site": "p1", "line": "L1", "machine": "M01"}
    event = {**ids, "ts": int(time.time() * 1000) - 60_000, "kind": "sensor", "signal": "s", "value": 1.0}
    event["unit"] = "u"
    value = orjson.dumps(event).replace(b'"unit":"u"', b'"unit":"' + b"u" * size + b'"')
    return b"demo/M01", value


def _compared(totals: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {machine: {name: values[name] for name in COMPARED} for machine, values in sorted(totals.items())}


@pytest.mark.parametrize("refused", ["kpis", "dead_letters"])
def test_a_refused_send_waits_and_the_worker_carries_on_when_the_topic_takes_it(
    apache_kafka: KafkaCluster, tmp_path: Path, refused: str
) -> None:
    bootstrap = apache_kafka.bootstrap_servers
    topics = unique_topics()
    create_topics(bootstrap, topics)
    valid = simulated_messages(VALID, seed=13)
    bad = [_big_bad_message(2 * 1024 * 1024)] if refused == "dead_letters" else []
    messages = valid[: VALID // 2] + bad + valid[VALID // 2 :]
    with WorkerProcess(bootstrap, topics, tmp_path) as worker:  # ready: the topics passed its checks
        # Too small for a KPI record; the dead-letter topic back to Kafka's default (under 2 MiB).
        set_max_message_bytes(bootstrap, topics[refused], 300 if refused == "kpis" else KAFKA_DEFAULT_LIMIT)
        produce(bootstrap, topics["telemetry"], messages)
        wait_for(
            worker.send_stuck,
            120,
            "the worker to report a refused send",
        )
        time.sleep(4)  # several commit intervals while stuck
        applied = worker.applied_events()
        assert applied < VALID
        assert committed_total(bootstrap, worker.app_id, topics["telemetry"]) <= applied
        assert worker.metric("linepulse_ready") == 0.0
        assert worker.metric(f'linepulse_send_failures_total{{topic="{topics[refused]}"}}') > 0
        assert worker.metric('linepulse_messages_total{result="dead_letter"}') == 0.0

        set_max_message_bytes(bootstrap, topics[refused], DEAD_LETTER_MAX_MESSAGE_BYTES)
        wait_for(lambda: worker.applied_events() >= VALID, 180, f"all {VALID} events after the fix")
        wait_for(lambda: worker.metric("linepulse_ready") == 1.0, 60, "/ready again")
        assert worker.metric("linepulse_send_stuck") == 0.0
        assert worker.applied_events() == VALID
        assert worker.metric('linepulse_messages_total{result="dead_letter"}') == len(bad)
        wait_for(
            lambda: committed_total(bootstrap, worker.app_id, topics["telemetry"]) == len(messages),
            30,
            "every offset committed",
        )
        totals = worker.totals()

    dead = consume_all(bootstrap, topics["dead_letters"])
    assert [(message.key, message.value) for message in dead] == bad
    offline = analyze_lines((value for _, value in messages), tmp_path)
    assert _compared(totals) == _compared(offline["summary"]["machines"])
    kpi_identity(list(records(consume_all(bootstrap, topics["kpis"]))), offline["kpis"])


def test_a_worker_stopped_while_a_send_is_refused_commits_nothing_it_did_not_apply(
    apache_kafka: KafkaCluster, tmp_path: Path
) -> None:
    bootstrap = apache_kafka.bootstrap_servers
    topics = unique_topics()
    create_topics(bootstrap, topics)
    messages = simulated_messages(VALID, seed=17)
    stopped = WorkerProcess(bootstrap, topics, tmp_path)
    with stopped:
        set_max_message_bytes(bootstrap, topics["kpis"], 300)
        produce(bootstrap, topics["telemetry"], messages)
        wait_for(
            stopped.send_stuck,
            120,
            "the worker to report a refused send",
        )
        applied = stopped.applied_events()
        started = time.monotonic()
        stopped.stop()
    assert stopped.process is not None
    assert time.monotonic() - started < 29, "the stuck worker did not stop on SIGTERM"
    assert "was not applied" in stopped.log_path.read_text(errors="replace")
    assert committed_total(bootstrap, stopped.app_id, topics["telemetry"]) <= applied < VALID

    # What the next start does with the batch is not checked here: a SIGTERM'd worker restarted
    # with a backlog loses messages even on main, without any refused send (reported separately).


def test_a_dead_letter_as_big_as_telemetry_allows_is_kept(apache_kafka: KafkaCluster, tmp_path: Path) -> None:
    """A bad message just under telemetry's 8 MiB limit still fits the dead-letter topic with its
    headers; the valid messages around it all count."""
    bootstrap = apache_kafka.bootstrap_servers
    topics = unique_topics()
    create_topics(bootstrap, topics)
    valid = simulated_messages(2_000, seed=7)
    bad = [_big_bad_message(8 * 1024 * 1024 - 400)]
    messages = valid[:1_000] + bad + valid[1_000:]
    produce(bootstrap, topics["telemetry"], messages)
    with WorkerProcess(bootstrap, topics, tmp_path) as worker:
        wait_for(lambda: worker.applied_events() >= len(valid), 180, "every valid event")
        dead_letters = 'linepulse_messages_total{result="dead_letter"}'
        wait_for(lambda: worker.metric(dead_letters) == 1.0, 30, "the dead letter")
        assert worker.applied_events() == len(valid)
        assert worker.metric("linepulse_send_stuck") == 0.0
        assert "Restarting dead" not in worker.log_path.read_text(errors="replace")
    dead = consume_all(bootstrap, topics["dead_letters"])
    assert [(message.key, message.value) for message in dead] == bad


def test_a_dead_letter_topic_smaller_than_telemetry_stops_the_start(apache_kafka: KafkaCluster) -> None:
    bootstrap = apache_kafka.bootstrap_servers
    topics = unique_topics()
    names = TopicNames(**topics)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        admin.create_topics([_new_topic(names.dead_letters, KAFKA_DEFAULT_LIMIT)])
    finally:
        admin.close()
    with pytest.raises(TopicMismatch) as raised:
        ensure_topics(bootstrap, topic_specs(names, 3, 1))
    message = str(raised.value)
    assert names.dead_letters in message and names.telemetry in message
    assert str(KAFKA_DEFAULT_LIMIT) in message and str(8 * 1024 * 1024) in message
    assert f"max.message.bytes={DEAD_LETTER_MAX_MESSAGE_BYTES}" in message


def _new_topic(name: str, limit: int) -> object:
    from kafka.admin import NewTopic

    return NewTopic(name, 3, 1, topic_configs={"max.message.bytes": str(limit)})
