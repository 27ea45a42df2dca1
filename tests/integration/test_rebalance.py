"""Two workers in one consumer group: after the rebalance each shows only the machines it holds.

Worker A applies the first half of the stream alone; worker B joins the group and the second half
arrives. Then the machines in A's and B's ``/metrics`` and ``/api/machines`` are disjoint, together
they are every machine of the plant, and their totals (each machine's state moved with its
partition through the changelog) are analyze's exactly. A worker that kept the machines it lost
would export them frozen, for ever (and ``LinepulseMachineSilent`` would fire for each).

Apache Kafka only. On Tansu the worker taking a partition over recovers stale states: Faust reads a
changelog up to the end offset the broker reports, and Tansu reports the start of the last record
batch + 1 (tests/integration/test_end_offsets.py: 5 records in one batch, end offset 1). Worker A
writes a partition's machines in one batch, so B recovered the second machine's previous record and
lost the events between it and A's committed offset: 61, 128 and 12 events in three runs, each time
one machine of the moved partition, its changelog holding the record B skipped (B's recovery log
showed highwater 16 while A's last record sat at offset 17). Four of five Tansu runs failed so; the
one that passed (under load) had A's last record alone in its batch, so the end offset was right.
Machines were disjoint and exported correctly in every Tansu run.
"""

from __future__ import annotations

from pathlib import Path

from service.brokers import KafkaCluster
from service.plant_file import load_demo_plant
from tests.integration.harness import WorkerProcess, produce, wait_for
from tests.integration.streams_fixtures import analyze_lines, create_topics, simulated_messages, unique_topics

EVENTS = 10_000
COMPARED = ("events", "good", "scrap", "run_ms")


def _exported(worker: WorkerProcess) -> set[str]:
    """Machines with a good-units series on the worker's /metrics."""
    found = set()
    for line in worker.get("/metrics").splitlines():
        if line.startswith("linepulse_good_units_total{"):
            pairs = (part.split("=", 1) for part in line.split("{", 1)[1].split("}", 1)[0].split(","))
            labels = {name: value.strip('"') for name, value in pairs}
            found.add(f"{labels['tenant']}/{labels['machine']}")
    return found


def test_two_workers_show_disjoint_machines_whose_totals_are_analyzes(
    apache_kafka: KafkaCluster, tmp_path: Path
) -> None:
    bootstrap = apache_kafka.bootstrap_servers
    topics = unique_topics()
    create_topics(bootstrap, topics)
    messages = simulated_messages(EVENTS, seed=3)
    everyone = {f"{machine.tenant}/{machine.id}" for machine in load_demo_plant().machines}
    produce(bootstrap, topics["telemetry"], messages[: EVENTS // 2])
    with WorkerProcess(bootstrap, topics, tmp_path) as a:
        wait_for(lambda: a.applied_events() >= EVENTS // 2, 180, "the first half on worker A")
        assert set(a.totals()) == everyone
        with WorkerProcess(bootstrap, topics, tmp_path, app_id=a.app_id) as b:
            produce(bootstrap, topics["telemetry"], messages[EVENTS // 2 :])

            def settled() -> bool:
                a.assert_alive()
                b.assert_alive()
                shown_a, shown_b = set(a.totals()), set(b.totals())
                return (
                    not shown_a & shown_b
                    and shown_a | shown_b == everyone
                    and a.applied_events() + b.applied_events() == EVENTS
                    and _exported(a) == shown_a
                    and _exported(b) == shown_b
                )

            try:
                wait_for(settled, 180, "each machine on exactly one worker, every event applied")
            except AssertionError:
                raise AssertionError(
                    f"A shows {sorted(a.totals())} exports {sorted(_exported(a))}; "
                    f"B shows {sorted(b.totals())} exports {sorted(_exported(b))}; "
                    f"applied {a.applied_events()} + {b.applied_events()} of {EVENTS}"
                ) from None
            assert b.totals(), "worker B was assigned no machine: the test shows nothing"
            totals = {**a.totals(), **b.totals()}

    offline = analyze_lines((value for _, value in messages), tmp_path)
    expected = offline["summary"]["machines"]
    assert {m: {k: totals[m][k] for k in COMPARED} for m in sorted(totals)} == {
        m: {k: expected[m][k] for k in COMPARED} for m in sorted(expected)
    }
