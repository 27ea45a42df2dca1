"""Exactly-once effect on Apache Kafka: SIGKILL the worker at three points in a 50,000-event stream.

After each kill the worker restarts, recovers its table from the changelog and skips what the
machine states say they already applied. The final per-machine totals must equal those of an
uninterrupted run exactly, and the KPI records (de-duplicated by window) must equal analyze's.

What the killed worker showed just before each kill (``/api/machines``' totals, the values of the
``linepulse_*_total`` counters) must be on the changelog it is restored from: a restored
total below a shown one is a counter reset to Prometheus' ``rate()``, a spike on a units-per-minute
graph.
"""

from __future__ import annotations

from pathlib import Path

from service.brokers import KafkaCluster
from streams.processing import decode_state
from tests.integration.harness import WorkerProcess, consume_all, produce, records, wait_for
from tests.integration.streams_fixtures import (
    analyze_lines,
    create_topics,
    kpi_identity,
    simulated_messages,
    unique_topics,
)

EVENTS = 50_000
KILL_AT = (10_000, 25_000, 40_000)
COMPARED = ("events", "good", "scrap", "run_ms")


def _compared(totals: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {machine: {name: values[name] for name in COMPARED} for machine, values in sorted(totals.items())}


def _on_changelog(bootstrap: str, changelog: str) -> dict[str, dict[str, int]]:
    """Each machine's newest state on the changelog, the one a restart recovers."""
    newest = {
        message.key.decode(): decode_state(message.value).totals
        for message in consume_all(bootstrap, changelog)
        if message.value is not None  # none are purged here
    }
    return {key: {name: getattr(totals, name) for name in COMPARED} for key, totals in newest.items()}


def _behind(shown: dict[str, dict[str, int]], restored: dict[str, dict[str, int]]) -> list[str]:
    return [
        f"{machine} {name}: shown {value}, restored {restored.get(machine, {}).get(name)}"
        for machine, values in shown.items()
        for name, value in values.items()
        if restored.get(machine, {}).get(name, -1) < value
    ]


def test_sigkill_three_times_changes_no_total(apache_kafka: KafkaCluster, tmp_path: Path) -> None:
    bootstrap = apache_kafka.bootstrap_servers
    messages = simulated_messages(EVENTS, seed=23)
    topics = unique_topics()
    create_topics(bootstrap, topics)
    produce(bootstrap, topics["telemetry"], messages)

    # Commits every 5 s while states are written every batch, so a kill usually leaves
    # applied-but-uncommitted messages that Kafka re-delivers. One that lands just after a commit,
    # while the worker waits for its next batch, leaves none; so the duplicates are summed over
    # every restarted worker: the idempotency path must really run at least once.
    killed = WorkerProcess(bootstrap, topics, tmp_path, extra_env={"LINEPULSE_COMMIT_INTERVAL_S": "5"})
    changelog = f"{killed.app_id}-machine-state-changelog"
    killed.start()
    duplicates = 0.0
    try:
        for threshold in KILL_AT:
            wait_for(lambda t=threshold: killed.applied_events() >= t, 240, f"{threshold} events applied")
            if killed.starts > 1:
                duplicates += killed.metric('linepulse_messages_total{result="duplicate"}')
            shown = _compared(killed.totals())
            killed.kill9()
            assert shown, "nothing shown before the kill"
            assert not _behind(shown, _on_changelog(bootstrap, changelog))
            killed.start()
        wait_for(lambda: killed.applied_events() >= EVENTS, 300, f"all {EVENTS} events applied after kills")
        interrupted = killed.totals()
        duplicates += killed.metric('linepulse_messages_total{result="duplicate"}')
        assert duplicates > 0
    finally:
        killed.stop()
    assert killed.starts == 4

    with WorkerProcess(bootstrap, topics, tmp_path) as uninterrupted:  # its own consumer group and state
        wait_for(lambda: uninterrupted.applied_events() >= EVENTS, 300, f"all {EVENTS} events, uninterrupted")
        reference = uninterrupted.totals()

    assert _compared(interrupted) == _compared(reference)
    offline = analyze_lines((value for _, value in messages), tmp_path)
    assert _compared(interrupted) == _compared(offline["summary"]["machines"])

    # Both workers wrote to the same kpis topic; after de-duplication every window appears exactly
    # as analyze computed it: nothing lost to the kills, nothing different.
    stream_kpis = list(records(consume_all(bootstrap, topics["kpis"])))
    kpi_identity(stream_kpis, offline["kpis"])
