"""Bad input is contained, on Apache Kafka and on Tansu: 1,000 malformed among 10,000 valid messages.

All 1,000 reach the dead-letter topic with their original bytes and a reason; every valid message is
applied; the worker keeps running; and the KPI records on the ``kpis`` topic are identical to those
``analyze`` writes for the same lines.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from models.calendar import PlantCalendar
from service.brokers import BrokerEndpoint
from service.plant_file import load_demo_plant
from tests.bad_messages import bad_messages
from tests.integration.harness import WorkerProcess, consume_all, produce, records, wait_for
from tests.integration.streams_fixtures import (
    analyze_lines,
    create_topics,
    kpi_identity,
    latest_line_records,
    simulated_messages,
    unique_topics,
)

VALID = 10_000
MALFORMED = 1_000
HOUR_MS = 3_600_000


def valid_messages() -> list[tuple[bytes, bytes]]:
    """The valid messages: from half an hour into a production day of the demo plant three days
    back. The VALID messages span about 3.5 hours, so they end inside the day they start in. From
    72 hours back they ended wherever the clock stood: when a production day began (06:00 in
    Seoul, 21:00 UTC) in the seconds before M01's next count (runs at about 17:30 UTC), M01's open
    day held no part, its day OEE was undefined and its /metrics series absent."""
    day = PlantCalendar.from_plant(load_demo_plant()).day_at(int(time.time() * 1000) - 72 * HOUR_MS)
    return simulated_messages(VALID, start_ms=day.start_ms + HOUR_MS // 2)


def _templates() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    ts = int(time.time() * 1000) - 60_000
    base: dict[str, Any] = {"v": 1, "tenant": "demo", "site": "p1", "line": "L1", "machine": "M01", "ts": ts}
    return (
        {**base, "kind": "count", "good": 1},
        {**base, "kind": "sensor", "signal": "probe", "value": 1.5},
        {**base, "kind": "state", "state": "running"},
        {
            **base,
            "kind": "samples",
            "signals": [{"signal": "probe", "ts": [ts - 1000, ts], "values": [1.5, 2.5]}],
        },
    )


def test_malformed_messages_go_to_dead_letters_and_valid_ones_all_count(
    broker: BrokerEndpoint, tmp_path: Path
) -> None:
    valid = valid_messages()
    bad = list(bad_messages(*_templates(), total=MALFORMED))
    mixed: list[tuple[bytes, bytes]] = []
    bad_iter = iter(bad)
    for index, message in enumerate(valid):
        mixed.append(message)
        if index % 10 == 9:
            item = next(bad_iter)
            mixed.append((item.key, item.value))
    assert len(mixed) == VALID + MALFORMED

    topics = unique_topics()
    create_topics(broker.bootstrap_servers, topics)
    produce(broker.bootstrap_servers, topics["telemetry"], mixed)

    with WorkerProcess(broker.bootstrap_servers, topics, tmp_path) as worker:
        wait_for(lambda: worker.applied_events() >= VALID, 240, f"{VALID} valid events applied")
        dead = []

        def all_dead_letters_arrived() -> bool:
            dead[:] = consume_all(broker.bootstrap_servers, topics["dead_letters"], idle_s=2)
            return len(dead) >= MALFORMED

        wait_for(all_dead_letters_arrived, 120, "1,000 dead letters")
        worker.assert_alive()
        assert worker.get("/health") == {"status": "ok"}
        metrics = worker.get("/metrics")
        assert 'linepulse_messages_total{result="dead_letter"} 1000.0' in metrics
        assert 'linepulse_oee_ratio{line="L1",machine="M01",site="p1",tenant="demo",window="day"}' in metrics
        assert worker.applied_events() == VALID

        # The line view: regrouped by line through kpis-by-line, folded on one worker per line.
        lines_offline = analyze_lines((value for _, value in mixed), tmp_path)["line_kpis"]
        expected_lines = latest_line_records(lines_offline)
        assert any(record["complete"] for record in expected_lines.values())
        stream_lines: dict[tuple[Any, ...], dict[str, Any]] = {}

        def line_view_caught_up() -> bool:
            found = records(consume_all(broker.bootstrap_servers, topics["line_kpis"], idle_s=2))
            stream_lines.update(latest_line_records(found))
            return stream_lines == expected_lines

        try:
            wait_for(line_view_caught_up, 60, "the line records equal analyze's")
        except AssertionError:
            differing = {
                key: {"stream": stream_lines.get(key), "analyze": record}
                for key, record in expected_lines.items()
                if stream_lines.get(key) != record
            }
            extra = sorted(set(stream_lines) - set(expected_lines))
            raise AssertionError(
                f"line records differ from analyze's: {differing}; only in the stream: {extra}"
            ) from None
        assert 'linepulse_line_oee_ratio{line="L1",site="p1",tenant="demo",window="hour"}' in worker.get(
            "/metrics"
        )

    headers = [dict(message.headers) for message in dead]
    offsets = {(h["linepulse.source.partition"], h["linepulse.source.offset"]) for h in headers}
    assert len(dead) == len(offsets) == MALFORMED
    assert all(h["linepulse.error.reason"] and h["linepulse.error.field"] for h in headers)
    assert Counter(message.value for message in dead) == Counter(item.value for item in bad)
    codes = Counter(h["linepulse.error.code"].decode() for h in headers)
    assert codes == Counter(item.code for item in bad)

    stream_kpis = list(records(consume_all(broker.bootstrap_servers, topics["kpis"])))
    offline = analyze_lines((value for _, value in mixed), tmp_path)
    assert offline["summary"]["dead_letters"] == MALFORMED
    assert offline["summary"]["applied"] == VALID
    assert Counter(entry["code"] for entry in offline["dead_letters"]) == codes
    kpi_identity(stream_kpis, offline["kpis"])

    assert all(orjson.loads(orjson.dumps(record)) == record for record in stream_kpis)
