"""The line view's sends have the telemetry's guarantee (Apache Kafka: Tansu enforces no per-topic
``max.message.bytes``, the limit used here to make the broker refuse the line records).

While ``line-kpis`` refuses the line records, the line view waits and says so (``/ready`` 503,
``linepulse_send_stuck`` 1) instead of acking the KPI record that produced them; once the topic
takes them, the line records equal ``analyze``'s and every regrouped record is committed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.brokers import KafkaCluster
from streams.topics import DEAD_LETTER_MAX_MESSAGE_BYTES
from tests.integration.harness import WorkerProcess, consume_all, produce, records, wait_for
from tests.integration.kafka_admin import committed_total, set_max_message_bytes
from tests.integration.streams_fixtures import (
    analyze_lines,
    create_topics,
    latest_line_records,
    simulated_messages,
    unique_topics,
)

MESSAGES = 4_000
PARTITIONS = 3


def test_a_refused_line_record_waits_and_the_line_view_misses_no_kpi_record(
    apache_kafka: KafkaCluster, tmp_path: Path
) -> None:
    bootstrap = apache_kafka.bootstrap_servers
    topics = unique_topics()
    create_topics(bootstrap, topics, PARTITIONS)
    messages = simulated_messages(MESSAGES, seed=31)
    with WorkerProcess(bootstrap, topics, tmp_path, partitions=PARTITIONS) as worker:
        set_max_message_bytes(bootstrap, topics["line_kpis"], 300)  # too small for a line record
        produce(bootstrap, topics["telemetry"], messages)
        wait_for(
            worker.send_stuck,
            120,
            "the line view to report a refused line record",
        )
        assert worker.metric("linepulse_ready") == 0.0
        assert worker.metric(f'linepulse_send_failures_total{{topic="{topics["line_kpis"]}"}}') > 0
        regrouped = len(consume_all(bootstrap, topics["kpis_by_line"], idle_s=2))
        assert committed_total(bootstrap, worker.app_id, topics["kpis_by_line"]) < regrouped

        set_max_message_bytes(bootstrap, topics["line_kpis"], DEAD_LETTER_MAX_MESSAGE_BYTES)
        wait_for(lambda: worker.applied_events() >= MESSAGES, 180, f"all {MESSAGES} events")
        wait_for(lambda: not worker.send_stuck(), 60, "the line view to carry on")
        expected = latest_line_records(analyze_lines((value for _, value in messages), tmp_path)["line_kpis"])
        assert any(record["complete"] for record in expected.values())
        found: dict[tuple[Any, ...], dict[str, Any]] = {}

        def caught_up() -> bool:
            found.update(latest_line_records(records(consume_all(bootstrap, topics["line_kpis"], idle_s=2))))
            return found == expected

        wait_for(caught_up, 90, "the line records equal analyze's")
        regrouped = len(consume_all(bootstrap, topics["kpis_by_line"], idle_s=2))
        wait_for(
            lambda: committed_total(bootstrap, worker.app_id, topics["kpis_by_line"]) == regrouped,
            30,
            "every regrouped KPI record committed",
        )
        worker.assert_alive()
