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

import os
from pathlib import Path

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
# A worker started with this on its PYTHONPATH holds its loop after each recovery's seek (slow_loop/).
SLOW_LOOP = {
    "PYTHONPATH": os.pathsep.join(
        filter(None, [str(Path(__file__).parent / "slow_loop"), os.environ.get("PYTHONPATH")])
    )
}


def _line_series(worker: WorkerProcess) -> list[str]:
    try:
        exposition = worker.get("/metrics")
    except OSError:
        return []
    return sorted(line for line in exposition.splitlines() if line.startswith("linepulse_line_"))


class Folded:
    """A worker that folded every line record of the test's telemetry, all committed."""

    def __init__(self, bootstrap: str, workdir: Path) -> None:
        self.bootstrap = bootstrap
        self.topics = unique_topics()
        create_topics(bootstrap, self.topics)
        messages = simulated_messages(EVENTS, seed=29)
        produce(bootstrap, self.topics["telemetry"], messages)
        self.expected = latest_line_records(
            analyze_lines((value for _, value in messages), workdir)["line_kpis"]
        )
        assert {(key[1], key[2]) for key in self.expected} >= {("L1", "hour"), ("L2", "hour")}
        self.worker = WorkerProcess(bootstrap, self.topics, workdir)
        self.line_records = 0

    def start(self) -> list[str]:
        """Start the worker, wait until it folded everything; its line series then."""
        worker, bootstrap, topics = self.worker, self.bootstrap, self.topics
        worker.start()
        wait_for(lambda: worker.applied_events() >= EVENTS, 240, f"{EVENTS} events applied")

        def line_view_caught_up() -> bool:
            found = list(records(consume_all(bootstrap, topics["line_kpis"], idle_s=1)))
            self.line_records = len(found)
            return latest_line_records(found) == self.expected

        wait_for(line_view_caught_up, 120, "the line records equal analyze's")

        def all_folds_committed() -> bool:
            regrouped = len(consume_all(bootstrap, topics["kpis_by_line"], idle_s=1))
            return committed_total(bootstrap, worker.app_id, topics["kpis_by_line"]) == regrouped

        wait_for(all_folds_committed, 60, "every kpis-by-line record committed")
        series = _line_series(worker)
        for line in ("L1", "L2"):
            sample = f'linepulse_line_oee_ratio{{line="{line}",site="p1",tenant="demo",window="hour"}} '
            assert any(s.startswith(sample) for s in series), series
        return series

    def assert_no_new_line_record(self) -> None:
        """Lines shown from the recovered state: no worker published a line record since."""
        assert len(consume_all(self.bootstrap, self.topics["line_kpis"], idle_s=1)) == self.line_records


def test_line_series_come_back_after_a_restart_without_new_line_records(
    apache_kafka: KafkaCluster, tmp_path: Path
) -> None:
    folded = Folded(apache_kafka.bootstrap_servers, tmp_path)
    worker = folded.worker
    try:
        before = folded.start()
        worker.kill9()
        worker.start()
        try:
            wait_for(lambda: _line_series(worker) == before, 60, "the line series of before the restart")
        except AssertionError:
            raise AssertionError(f"before the restart: {before}\nafter: {_line_series(worker)}") from None
        folded.assert_no_new_line_record()
    finally:
        worker.stop()


def test_line_series_follow_their_partition_through_rebalances(
    apache_kafka: KafkaCluster, tmp_path: Path
) -> None:
    """The audit's run: B joins A's group, then leaves; after the rebalance each line is shown by
    exactly one worker (its owner), and A shows them all again once it holds every partition."""
    _follow_through_rebalances(apache_kafka.bootstrap_servers, tmp_path, {})


def test_line_series_follow_their_partition_when_the_loop_is_slow_after_the_recovery_seeks(
    apache_kafka: KafkaCluster, tmp_path: Path
) -> None:
    """The same with both workers' loops held for 0.3 s after each table recovery's seek
    (``slow_loop``), as a busy machine's may be: the consumer's fetch, waiting in the consumer
    thread across the rebalance, took the changelog records just sought and Faust dropped them,
    the flow not resumed yet; the recovery waited for them until the next rebalance ("No event
    received for active tp"), the worker not ready. Seen once in about ten runs of the test above;
    here nearly every time without streams.refetch."""
    _follow_through_rebalances(apache_kafka.bootstrap_servers, tmp_path, SLOW_LOOP)


def _follow_through_rebalances(bootstrap: str, tmp_path: Path, env: dict[str, str]) -> None:
    folded = Folded(bootstrap, tmp_path)
    a = folded.worker
    a.extra_env.update(env)
    try:
        before = folded.start()
        with WorkerProcess(folded.bootstrap, folded.topics, tmp_path, app_id=a.app_id, extra_env=env) as b:

            def split() -> bool:
                on_a, on_b = _line_series(a), _line_series(b)
                return not set(on_a) & set(on_b) and sorted(on_a + on_b) == before

            try:
                wait_for(split, 120, "the line series split between A and B")
            except AssertionError:
                # A worker whose table recovery stalls (Faust's "No event received for active tp")
                # is not ready and shows no line: told apart from lines not shown by a ready worker.
                raise AssertionError(
                    f"before: {before}\nA (ready: {a.metric_if_up('linepulse_ready')}): {_line_series(a)}\n"
                    f"B (ready: {b.metric_if_up('linepulse_ready')}): {_line_series(b)}"
                ) from None
        wait_for(lambda: _line_series(a) == before, 60, "every line series back on A")
        folded.assert_no_new_line_record()
    finally:
        a.stop()
