"""Binary frames through the real worker, on Apache Kafka and on Tansu.

The simulated plant's ``samples`` records are sent as binary frames (the same readings), among the
other records, with damaged frames mixed in. Every damaged frame reaches the dead-letter topic with
its original bytes and the field that is wrong; every valid message is applied; and the KPI records
on the ``kpis`` topic are identical to those ``analyze`` writes for the JSON form of the same
messages, so the frame path (cached header validation included) changes nothing downstream; and
``analyze`` over a file of the frames themselves gives them too.
"""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

import orjson

from service.brokers import BrokerEndpoint
from tests.frame_records import as_frame
from tests.integration.harness import WorkerProcess, consume_all, produce, records, wait_for
from tests.integration.streams_fixtures import (
    analyze_lines,
    create_topics,
    kpi_identity,
    simulated_messages,
    unique_topics,
)

VALID = 6_000


def _damaged(frame: bytes) -> list[tuple[bytes, str]]:
    """Broken copies of a valid frame (whose header the worker has cached by then), with the field named."""
    header_len = struct.unpack_from("<I", frame, 4)[0]
    body = 8 + header_len
    header = orjson.loads(frame[8:body])
    n = sum(signal["n"] for signal in header["signals"])

    def with_header(**changes: object) -> bytes:
        raw = orjson.dumps({**header, **changes})
        raw = raw.ljust(len(raw) + (-len(raw)) % 8)
        return frame[:4] + struct.pack("<I", len(raw)) + raw + frame[body:]

    nan = bytearray(frame)
    nan[body + 8 * n + 8 * (n - 1) : body + 16 * n] = struct.pack("<d", float("nan"))
    backwards = bytearray(frame)
    second = struct.unpack_from("<q", frame, body + 8)[0]
    backwards[body : body + 8] = struct.pack("<q", second + 1)  # the first reading after the second
    return [
        (frame[:-8], "body"),
        (bytes(nan), f"signals.{len(header['signals']) - 1}.values.{header['signals'][-1]['n'] - 1}"),
        (bytes(backwards), "signals.0.ts.1"),
        (with_header(v=2), "v"),
        (with_header(ts="yesterday"), "ts"),
        (with_header(site="a b"), "site"),
        (b"LPF1" + frame[4:8] + b"{" * header_len + frame[body:], "header"),
    ]


def test_frames_apply_like_their_json_and_damaged_ones_are_dead_lettered(
    broker: BrokerEndpoint, tmp_path: Path
) -> None:
    json_messages = simulated_messages(VALID, seed=5)
    sent: list[tuple[bytes, bytes]] = []
    bad: list[tuple[bytes, str]] = []
    frames = 0
    for key, value in json_messages:
        if b'"kind":"samples"' not in value:
            sent.append((key, value))
            continue
        frame = as_frame(value)
        sent.append((key, frame))
        frames += 1
        if frames % 50 == 10 and len(bad) < 21:
            for damaged, field in _damaged(frame)[: 21 - len(bad)]:
                sent.append((key, damaged))
                bad.append((damaged, field))
    assert frames > 500 and len(bad) == 21

    topics = unique_topics()
    create_topics(broker.bootstrap_servers, topics)
    produce(broker.bootstrap_servers, topics["telemetry"], sent)

    with WorkerProcess(broker.bootstrap_servers, topics, tmp_path) as worker:
        wait_for(lambda: worker.applied_events() >= VALID, 240, f"{VALID} valid messages applied")
        dead = []

        def all_dead_letters_arrived() -> bool:
            dead[:] = consume_all(broker.bootstrap_servers, topics["dead_letters"], idle_s=2)
            return len(dead) >= len(bad)

        wait_for(all_dead_letters_arrived, 120, f"{len(bad)} dead letters")
        worker.assert_alive()
        assert worker.applied_events() == VALID
        readings = sum(totals["readings"] for totals in worker.totals().values())

    headers = [dict(message.headers) for message in dead]
    assert len(dead) == len(bad)
    assert {h["linepulse.error.code"] for h in headers} == {b"invalid_frame"}
    # The original bytes, each with the field its damage is in (partitions interleave: no order).
    found = [
        (message.value, h["linepulse.error.field"].decode()) for message, h in zip(dead, headers, strict=True)
    ]
    assert sorted(found) == sorted(bad)

    offline = analyze_lines((value for _, value in json_messages), tmp_path)
    assert offline["summary"]["applied"] == VALID and offline["summary"]["dead_letters"] == 0
    # The operator's replay of the same messages from a file: frames and all, damaged ones too
    # (but the two that hide their own size: a file cannot find the record after such a frame).
    unsized = {damaged for damaged, field in bad if field in ("body", "header")}
    replayed = analyze_lines((value for _, value in sent if value not in unsized), tmp_path)
    assert replayed["summary"]["applied"] == VALID
    assert replayed["summary"]["dead_letters"] == len(bad) - len(unsized) > 0
    expected_readings = sum(
        sum(len(series["values"]) for series in record["signals"]) if record["kind"] == "samples" else 1
        for record in (orjson.loads(value) for _, value in json_messages)
        if record["kind"] in ("samples", "sensor")
    )
    assert readings == expected_readings
    stream_kpis = list(records(consume_all(broker.bootstrap_servers, topics["kpis"])))
    assert Counter(record["complete"] for record in stream_kpis)[True] > 0
    kpi_identity(stream_kpis, offline["kpis"])
    kpi_identity(stream_kpis, replayed["kpis"])
