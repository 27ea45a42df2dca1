"""The line series come back on /metrics after a worker restart, without any new line record
(Apache Kafka).

The worker clears the lines it shows when its partitions are revoked (a restart, a deploy, a
rebalance), and only a new ``line-kpis`` record brought a line back: up to a window's length later
(an hour, a shift, a day). Found in an audit on a real broker, 2026-11-27. Now the line-view state
keeps each line's newest records and the worker shows them again once its table is recovered.

The worker is killed only once every ``kpis-by-line`` record is committed, so the restarted worker
folds nothing again: whatever it shows of the lines comes from the recovered table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.brokers import KafkaCluster
from tests.integration.harness import WorkerProcess, consume_all, produce, records, wait_for
from tests.integration.kafka_admin import committed_total
from tests.integration.streams_fixtures import (
    analyze_lines,
    create_topics,
    latest_line_records,
    simulated_messages,
    unique_topics,
)

EVENTS = 8_000


def _line_series(worker: WorkerProcess) -> list[str]:
    try:
        exposition = worker.get("/metrics")
    except OSError:
        return []
    return sorted(line for line in exposition.splitlines() if line.startswith("linepulse_line_"))


def test_line_series_come_back_after_a_restart_without_new_line_records(
    apache_kafka: KafkaCluster, tmp_path: Path
) -> None:
    bootstrap = apache_kafka.bootstrap_servers
    topics = unique_topics()
    create_topics(bootstrap, topics)
    messages = simulated_messages(EVENTS, seed=29)
    produce(bootstrap, topics["telemetry"], messages)
    expected = latest_line_records(analyze_lines((value for _, value in messages), tmp_path)["line_kpis"])
    assert {(key[1], key[2]) for key in expected} >= {("L1", "hour"), ("L2", "hour")}

    worker = WorkerProcess(bootstrap, topics, tmp_path)
    worker.start()
    try:
        wait_for(lambda: worker.applied_events() >= EVENTS, 240, f"{EVENTS} events applied")
        line_records: list[dict[str, Any]] = []

        def line_view_caught_up() -> bool:
            line_records[:] = records(consume_all(bootstrap, topics["line_kpis"], idle_s=1))
            return latest_line_records(line_records) == expected

        wait_for(line_view_caught_up, 120, "the line records equal analyze's")

        def all_folds_committed() -> bool:
            regrouped = len(consume_all(bootstrap, topics["kpis_by_line"], idle_s=1))
            return committed_total(bootstrap, worker.app_id, topics["kpis_by_line"]) == regrouped

        wait_for(all_folds_committed, 60, "every kpis-by-line record committed")
        before = _line_series(worker)
        for line in ("L1", "L2"):
            assert f'linepulse_line_oee_ratio{{line="{line}",site="p1",tenant="demo",window="hour"}}' in (
                " ".join(before)
            ), before

        worker.kill9()
        worker.start()
        try:
            wait_for(lambda: _line_series(worker) == before, 60, "the line series of before the restart")
        except AssertionError:
            raise AssertionError(f"before the restart: {before}\nafter: {_line_series(worker)}") from None
        # Shown from the recovered state: the restarted worker published no line record.
        assert len(consume_all(bootstrap, topics["line_kpis"], idle_s=1)) == len(line_records)
    finally:
        worker.stop()
