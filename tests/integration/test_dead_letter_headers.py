"""Dead letters keep the original message's headers, on Apache Kafka, as Kafka Connect's DLQ does.

A bad telemetry message and a bad record on ``kpis`` (the line view's input) reach the dead-letter
topic with their key, value and headers as they were produced (order, repeats and a null value
included), then linepulse's error headers; a message at telemetry's size limit, most of it headers,
still fits the dead-letter topic with them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from models.machine_state import MachineState
from service.brokers import KafkaCluster
from service.plant_file import load_demo_plant
from streams.dead_letters import Header
from streams.processing import Applied, TelemetryProcessor
from streams.topics import MAX_MESSAGE_BYTES
from tests.integration.harness import WorkerProcess, consume_all, wait_for
from tests.integration.streams_fixtures import create_topics, simulated_messages, unique_topics

ORIGINAL: list[Header] = [
    ("trace-id", b"4bf92f3577b34da6"),
    ("gateway", None),  # Kafka allows a null header value
    ("trace-id", b"00f067aa0ba902b7"),
    ("linepulse.error.code", b"from an earlier replay"),
]


async def _produce(bootstrap: str, sends: list[tuple[str, bytes, bytes, list[Header]]]) -> None:
    """aiokafka, not kafka-python: kafka-python refuses a null header value, which Kafka allows."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=MAX_MESSAGE_BYTES)
    await producer.start()
    try:
        for topic, key, value, headers in sends:
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


def _linepulse(headers: list[tuple[str, bytes | None]]) -> dict[str, bytes | None]:
    return {name: value for name, value in headers if name.startswith("linepulse.")}


def test_dead_letters_keep_the_original_headers_then_linepulse_ones(
    apache_kafka: KafkaCluster, tmp_path: Path
) -> None:
    bootstrap = apache_kafka.bootstrap_servers
    topics = unique_topics()
    create_topics(bootstrap, topics)
    valid = simulated_messages(100)
    bad_json = (b"demo/M01", b'{"v":1,"tenant":"demo",')
    # At telemetry's limit, a third of it in headers: too large to apply, not to dead-letter.
    big_headers = [*ORIGINAL, ("bulk", b"h" * (MAX_MESSAGE_BYTES // 3))]
    big = (b"demo/M02", b"v" * (MAX_MESSAGE_BYTES - MAX_MESSAGE_BYTES // 3 - 4096))
    not_a_kpi = (b"demo/M03", b'{"not": "a KPI record"}')
    stranger = (b"demo/L1", _kpi_record_of(valid, machine="GHOST"))  # valid, of no configured machine
    sends = [(topics["telemetry"], key, value, []) for key, value in valid]
    sends += [
        (topics["telemetry"], *bad_json, ORIGINAL),
        (topics["telemetry"], *big, big_headers),
        (topics["kpis"], *not_a_kpi, ORIGINAL),
        (topics["kpis"], *stranger, []),
    ]
    asyncio.run(_produce(bootstrap, sends))

    dead: list[Any] = []
    with WorkerProcess(bootstrap, topics, tmp_path) as worker:

        def dead_letters_arrived() -> bool:
            dead[:] = consume_all(bootstrap, topics["dead_letters"], idle_s=2)
            return len(dead) >= 4

        wait_for(dead_letters_arrived, 120, "four dead letters")
        worker.assert_alive()
        line_kpis = consume_all(bootstrap, topics["line_kpis"], idle_s=2)
    by_value = {letter.value: letter for letter in dead}
    assert len(dead) == 4 and set(by_value) == {bad_json[1], big[1], not_a_kpi[1], stranger[1]}

    letter = by_value[bad_json[1]]
    assert letter.key == bad_json[0]
    assert letter.headers[: len(ORIGINAL)] == ORIGINAL
    linepulse = letter.headers[len(ORIGINAL) :]
    assert [name for name, _ in linepulse] == [
        "linepulse.error.code",
        "linepulse.error.field",
        "linepulse.error.reason",
        "linepulse.source.topic",
        "linepulse.source.partition",
        "linepulse.source.offset",
    ]
    assert dict(letter.headers)["linepulse.error.code"] == b"invalid_json"  # the last one wins
    assert dict(letter.headers)["linepulse.source.topic"] == topics["telemetry"].encode()

    letter = by_value[big[1]]
    assert letter.key == big[0] and letter.headers[: len(big_headers)] == big_headers
    assert dict(letter.headers)["linepulse.error.code"] == b"too_large"

    letter = by_value[not_a_kpi[1]]  # the line view's dead letter
    assert letter.key == not_a_kpi[0] and letter.headers[: len(ORIGINAL)] == ORIGINAL
    assert _linepulse(letter.headers[len(ORIGINAL) :])["linepulse.source.topic"] == topics["kpis"].encode()
    assert dict(letter.headers)["linepulse.error.code"] == b"invalid_schema"

    letter = by_value[stranger[1]]  # schema-valid, but no machine of the plant: no line counts it
    assert dict(letter.headers)["linepulse.error.code"] == b"unknown_machine"
    assert dict(letter.headers)["linepulse.error.field"] == b"machine"
    assert dict(letter.headers)["linepulse.error.reason"] == b"demo/GHOST is not in the plant configuration"
    assert not any(b"GHOST" in record.value for record in line_kpis)


def _kpi_record_of(messages: list[tuple[bytes, bytes]], machine: str) -> bytes:
    """A schema-valid KPI record (an open window of the first machine) claiming to be ``machine``'s."""
    processor = TelemetryProcessor(load_demo_plant(), max_payload_bytes=1 << 20, max_future_ms=300_000)
    states: dict[str, MachineState] = {}
    for key, value in messages:
        outcome = processor.process(key, value, timestamp_ms=None, load_state=states.get)
        if isinstance(outcome, Applied):
            states[outcome.state.key] = outcome.state
    state = states["demo/M01"]
    record = processor.open_window_records(state)[0].model_dump(mode="json")
    return orjson.dumps({**record, "machine": machine})
