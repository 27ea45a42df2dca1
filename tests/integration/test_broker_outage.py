"""A broker outage in the middle of a backlog: noticed within seconds, and a SIGTERM during it stops
the worker promptly without committing what it did not write (a dedicated Apache Kafka cluster,
since its only broker is killed).

The producer retries an unanswered send for ``producer_request_timeout`` (20 minutes): the worker
must not wait that long to say so (``/ready`` 503, ``linepulse_send_stuck`` 1), nor to stop. Once
the broker is back, a restarted worker applies every message exactly once. The Kafka client's
reconnect errors are shown once per minute, not many times a second.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.brokers import BrokerError, KafkaCluster
from tests.integration.harness import WorkerProcess, produce, wait_for
from tests.integration.kafka_admin import committed_total
from tests.integration.streams_fixtures import create_topics, simulated_messages, unique_topics

MESSAGES = 30_000
PARTITIONS = 3


@pytest.fixture
def own_kafka() -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(1)
    try:
        cluster.start()
    except BrokerError as exc:
        pytest.fail(f"Apache Kafka (1 node, dedicated) could not start: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


def test_an_outage_makes_the_worker_unready_and_sigterm_stops_it_without_committing(
    own_kafka: KafkaCluster, tmp_path: Path
) -> None:
    bootstrap = own_kafka.bootstrap_servers
    topics = unique_topics()
    create_topics(bootstrap, topics, PARTITIONS)
    produce(bootstrap, topics["telemetry"], simulated_messages(MESSAGES, seed=29))
    first = WorkerProcess(bootstrap, topics, tmp_path, partitions=PARTITIONS)
    with first:
        # Killed while the worker works through its fetched backlog: its next sends go unanswered.
        wait_for(lambda: first.applied_events() >= 2_000, 120, "the first messages applied")
        own_kafka.kill_broker(0)
        wait_for(first.send_stuck, 30, "the outage noticed")
        assert first.metric_if_up("linepulse_ready") == 0.0
        applied = first.applied_events()
        assert applied < MESSAGES, "the backlog was all applied before the outage: nothing tested"
        started = time.monotonic()
        first.stop()
        stop_s = time.monotonic() - started
    assert first.process is not None and first.process.returncode is not None
    assert stop_s < 29, f"SIGTERM during the outage took {stop_s:.0f} s (killed after 30 s)"
    log = first.log_path.read_text(errors="replace")
    assert "was not applied" in log
    # aiokafka tried to reconnect many times a second (~45 such lines a second before the throttle);
    # the outage and the stop lasted about a minute, a window of LINEPULSE_LOG_REPEAT_WINDOW_S: the
    # first line, the stop's count of those left out, and a count more if a window ended before.
    unreachable = log.count("Unable connect to node with id 1")
    assert 2 <= unreachable <= 3, f"{unreachable} lines saying the broker is unreachable"
    counted = r"Unable connect to node with id 1: .* \([1-9]\d* more like this in the last \d+ s\)"
    assert re.search(counted, log), "the stop did not report how many lines it left out"

    own_kafka.start_broker(0)
    assert committed_total(bootstrap, first.app_id, topics["telemetry"]) <= applied
    with WorkerProcess(bootstrap, topics, tmp_path, app_id=first.app_id, partitions=PARTITIONS) as again:
        wait_for(lambda: again.applied_events() >= MESSAGES, 240, f"all {MESSAGES} messages applied")
        wait_for(
            lambda: committed_total(bootstrap, first.app_id, topics["telemetry"]) == MESSAGES,
            60,
            "every offset committed",
        )
        time.sleep(3)
        assert again.applied_events() == MESSAGES  # none twice, none lost


STOP_TIMEOUT_S = 8  # LINEPULSE_STOP_TIMEOUT_S for the idle worker: short, so the test is quick


def test_an_idle_worker_sigterm_during_an_outage_exits_within_the_stop_timeout(
    own_kafka: KafkaCluster, tmp_path: Path
) -> None:
    """No backlog, no send in flight: Faust's stop waits in its final commit for a coordinator that
    is down, for as long as it is down. The stop timeout exits the worker (status 70, a CRITICAL
    line) before a supervisor's kill; nothing is lost, the states record the offsets they applied."""
    bootstrap = own_kafka.bootstrap_servers
    topics = unique_topics()
    create_topics(bootstrap, topics, PARTITIONS)
    messages = simulated_messages(300, seed=31)
    produce(bootstrap, topics["telemetry"], messages)
    env = {"LINEPULSE_STOP_TIMEOUT_S": str(STOP_TIMEOUT_S)}
    worker = WorkerProcess(bootstrap, topics, tmp_path, partitions=PARTITIONS, extra_env=env)
    with worker:
        wait_for(lambda: worker.applied_events() >= len(messages), 120, "every message applied")
        time.sleep(3)  # idle: the backlog's offsets committed, nothing in flight
        own_kafka.kill_broker(0)
        time.sleep(2)
        started = time.monotonic()
        worker.stop()
        stop_s = time.monotonic() - started
    assert worker.process is not None
    log = worker.log_path.read_text(errors="replace")
    assert worker.process.returncode == 70, (
        f"exit {worker.process.returncode} after {stop_s:.0f} s:\n{log[-3000:]}"
    )
    assert stop_s < STOP_TIMEOUT_S + 5, f"SIGTERM during the outage took {stop_s:.0f} s"
    assert f"still stopping {STOP_TIMEOUT_S} s after the stop began" in log

    own_kafka.start_broker(0)
    with WorkerProcess(bootstrap, topics, tmp_path, app_id=worker.app_id, partitions=PARTITIONS) as again:
        wait_for(lambda: again.applied_events() >= len(messages), 240, "the states recovered")
        time.sleep(3)
        assert again.applied_events() == len(messages)  # none applied twice, none lost
