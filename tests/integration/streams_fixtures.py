"""Shared pieces of the worker integration tests: simulated telemetry, topics, and analyze's view."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from models.plant import PlantConfig
from service.analyze import analyze_file
from service.baseline import ScheduledReset
from service.plant_file import load_demo_plant
from service.settings import load_settings
from service.simulator import PlantSimulator
from streams.topics import TopicNames, ensure_topics, topic_specs

__all__ = [
    "analyze_lines",
    "create_topics",
    "kpi_identity",
    "latest_line_records",
    "simulated_messages",
    "unique_topics",
]

HOUR_MS = 3_600_000


def simulated_messages(
    count: int, seed: int = 11, hours_ago: int = 72, start_ms: int | None = None
) -> list[tuple[bytes, bytes]]:
    """``count`` (key, value) pairs of the demo plant, from ``start_ms`` (else ``hours_ago`` hours back)."""
    plant = load_demo_plant()
    now_ms = int(time.time() * 1000)
    first_ms = now_ms - hours_ago * HOUR_MS if start_ms is None else start_ms
    simulator = PlantSimulator(plant, seed=seed, start_ms=first_ms)
    messages = []
    for record in simulator.events(now_ms):
        messages.append((f"{record['tenant']}/{record['machine']}".encode(), orjson.dumps(record)))
        if len(messages) == count:
            return messages
    raise AssertionError(f"the simulator produced only {len(messages)} of {count} records")


def unique_topics() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    names = TopicNames(
        telemetry=f"telemetry-{suffix}",
        kpis=f"kpis-{suffix}",
        alerts=f"alerts-{suffix}",
        dead_letters=f"dead-letters-{suffix}",
        line_kpis=f"line-kpis-{suffix}",
        kpis_by_line=f"kpis-by-line-{suffix}",
        control=f"control-{suffix}",
    )
    return {
        "telemetry": names.telemetry,
        "kpis": names.kpis,
        "alerts": names.alerts,
        "dead_letters": names.dead_letters,
        "line_kpis": names.line_kpis,
        "kpis_by_line": names.kpis_by_line,
        "control": names.control,
    }


def create_topics(bootstrap: str, topics: dict[str, str], partitions: int = 3) -> None:
    names = TopicNames(**topics)
    ensure_topics(bootstrap, topic_specs(names, partitions, 1))


def analyze_lines(
    values: Iterable[bytes],
    workdir: Path,
    plant: PlantConfig | None = None,
    partitions: int = 3,
    resets: Sequence[ScheduledReset] = (),
) -> dict[str, Any]:
    """Run ``analyze`` over the same values, one per line, as an operator would with a file of a
    telemetry topic of ``partitions`` partitions (the tests' topics have 3), with ``resets`` as
    its ``--baseline-reset`` options.

    The file's lines were produced to the topic before now: ``--received-at`` now gives them the
    worker's verdicts on their Kafka timestamps (an event in 2096 is too far ahead of either).
    """
    source = workdir / f"telemetry-{uuid.uuid4().hex[:6]}.jsonl"
    with source.open("wb") as handle:
        for value in values:
            handle.write(value + b"\n")
    out = workdir / f"analyze-{source.stem}"
    received_at_ms = int(time.time() * 1000)
    summary = analyze_file(
        source, plant or load_demo_plant(), out, load_settings(partitions=partitions), resets, received_at_ms
    )
    kpis = [orjson.loads(line) for line in (out / "kpis.jsonl").read_bytes().splitlines()]
    dead = [orjson.loads(line) for line in (out / "dead_letters.jsonl").read_bytes().splitlines()]
    lines = [orjson.loads(line) for line in (out / "line_kpis.jsonl").read_bytes().splitlines()]
    alerts = [orjson.loads(line) for line in (out / "alerts.jsonl").read_bytes().splitlines()]
    return {"summary": summary, "kpis": kpis, "dead_letters": dead, "line_kpis": lines, "alerts": alerts}


def latest_line_records(records: Iterable[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The highest revision of each line window, without the revision number: the line's figures.

    Which partial records come before depends on the order machine records reach the line's worker;
    the last one (every machine's newest record folded) does not.
    """
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for record in records:
        key = (record["tenant"], record["line"], record["window"], record["start_ms"])
        if key not in latest or record["revision"] > latest[key]["revision"]:
            latest[key] = record
    return {key: {k: v for k, v in record.items() if k != "revision"} for key, record in latest.items()}


def _kpi_key(record: dict[str, Any]) -> tuple[Any, ...]:
    return (record["tenant"], record["machine"], record["window"], record["start_ms"], record["revision"])


def kpi_identity(stream_records: list[dict[str, Any]], analyze_records: list[dict[str, Any]]) -> None:
    """The complete KPI records from the stream equal analyze's, field for field.

    Re-deliveries after a crash may repeat a record; they must repeat it identically.
    """
    by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
    for record in stream_records:
        key = _kpi_key(record)
        assert by_key.setdefault(key, record) == record, f"two different records for {key}"
    expected = {_kpi_key(record): record for record in analyze_records if record["complete"]}
    assert expected, "analyze closed no window: the test data is too short"
    missing = sorted(set(expected) - set(by_key))
    extra = sorted(set(by_key) - set(expected))
    assert not missing and not extra, f"missing {missing[:5]} extra {extra[:5]}"
    for key, record in expected.items():
        assert by_key[key] == record, f"stream and analyze differ for {key}"
    assert Counter(r["window"] for r in expected.values())["hour"] > 0
