"""A KPI record the schema accepts but the line view cannot fold is dead-lettered, and the worker
carries on (Apache Kafka).

Since the line view's sends go through the outbox, an exception while folding withholds the event
and halts the worker; a record that always fails the same way (here an empty ``big_losses_s``,
written by someone else to ``kpis``) halted it again at every start, and the next owner of its
partition after a rebalance too. Found in review, 2026-11-26.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from service.brokers import KafkaCluster
from tests.integration.harness import WorkerProcess, consume_all, produce, records, wait_for
from tests.integration.streams_fixtures import create_topics, simulated_messages, unique_topics

FIRST, MORE = 4_000, 1_000


def test_a_record_the_line_view_cannot_fold_is_dead_lettered_and_the_worker_carries_on(
    apache_kafka: KafkaCluster, tmp_path: Path
) -> None:
    bootstrap = apache_kafka.bootstrap_servers
    topics = unique_topics()
    create_topics(bootstrap, topics)
    messages = simulated_messages(FIRST + MORE, seed=41)
    produce(bootstrap, topics["telemetry"], messages[:FIRST])
    with WorkerProcess(bootstrap, topics, tmp_path) as worker:
        kpis: list[dict[str, Any]] = []

        def a_kpi_record() -> bool:
            kpis[:] = records(consume_all(bootstrap, topics["kpis"], idle_s=1))
            return bool(kpis)

        wait_for(a_kpi_record, 120, "a KPI record")
        # Valid to the schema, not to the line view; complete and a newer revision, so it is folded.
        poison = {**kpis[0], "complete": True, "revision": kpis[0]["revision"] + 1, "big_losses_s": {}}
        key = f"{poison['tenant']}/{poison['machine']}".encode()
        produce(bootstrap, topics["kpis"], [(key, orjson.dumps(poison))])

        dead: list[Any] = []

        def dead_lettered() -> bool:
            dead[:] = [
                letter
                for letter in consume_all(bootstrap, topics["dead_letters"], idle_s=1)
                if dict(letter.headers).get("linepulse.error.code") == b"processing_error"
            ]
            return bool(dead)

        wait_for(dead_lettered, 60, "the unfoldable record dead-lettered")
        (letter,) = dead
        assert orjson.loads(letter.value) == poison
        assert dict(letter.headers)["linepulse.source.topic"] == topics["kpis_by_line"].encode()
        assert b"KeyError" in dict(letter.headers)["linepulse.error.reason"]

        # Not halted: telemetry after it is applied, and the worker stays ready.
        produce(bootstrap, topics["telemetry"], messages[FIRST:])
        wait_for(lambda: worker.applied_events() >= FIRST + MORE, 120, "the later telemetry applied")
        worker.assert_alive()
        assert worker.metric("linepulse_ready") == 1.0
