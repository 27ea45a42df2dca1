"""Decode and validate: single JSON events (events/s) and batches of 500 readings (readings/s)."""

from __future__ import annotations

import time
from typing import Final

import orjson

from benchmarks.messages import READINGS_PER_BATCH, Message, frames, samples_records, sensor_events
from benchmarks.results import Figure, best_rate, rate_figure
from service.plant_file import load_demo_plant
from streams.decode import Accepted, TelemetryDecoder

__all__ = ["NOTES", "TITLE", "figures"]

TITLE: Final = "Decode and validate"
NOTES: Final = (
    "`TelemetryDecoder.decode` is the worker's whole input boundary: size, JSON or frame parsing, the "
    "pydantic contract (or the frame's vectorised checks), key, future time and plant lookup. Against "
    "a bare `orjson.loads` of the same bytes (parsing without any validation: the floor of what a "
    "JSON consumer pays), and the binary frame against the JSON `samples` record with the same readings."
)


def _decode_all(decoder: TelemetryDecoder, messages: list[Message], now_ms: int) -> None:
    for key, value in messages:
        result = decoder.decode(key, value, now_ms)
        if not isinstance(result, Accepted):  # a benchmark of the reject path would be meaningless
            raise AssertionError(f"benchmark message rejected: {result}")


def _parse_all(messages: list[Message]) -> None:
    for _, value in messages:
        orjson.loads(value)


def figures(quick: bool) -> list[Figure]:
    decoder = TelemetryDecoder(load_demo_plant(), max_payload_bytes=1 << 20, max_future_ms=300_000)
    now = int(time.time() * 1000)
    min_time = 0.1 if quick else 0.3
    events = sensor_events(2_000)
    batches_json = samples_records(40)
    batches_bin = frames(40)
    batch_readings = len(batches_json) * READINGS_PER_BATCH

    event_rate = best_rate(lambda: _decode_all(decoder, events, now), len(events), min_time_s=min_time)
    event_parse = best_rate(lambda: _parse_all(events), len(events), min_time_s=min_time)
    json_rate = best_rate(
        lambda: _decode_all(decoder, batches_json, now), batch_readings, min_time_s=min_time
    )
    json_parse = best_rate(lambda: _parse_all(batches_json), batch_readings, min_time_s=min_time)
    frame_rate = best_rate(
        lambda: _decode_all(decoder, batches_bin, now), batch_readings, min_time_s=min_time
    )
    return [
        rate_figure("decode.event.vs_orjson", event_rate, event_parse, "events/s",
                    what="sensor event, decode + validate", vs="orjson.loads only"),
        rate_figure("decode.samples_json.vs_orjson", json_rate, json_parse, "readings/s",
                    what="JSON samples record of 500 readings, decode + validate", vs="orjson.loads only"),
        rate_figure("decode.frame.vs_samples_json", frame_rate, json_rate, "readings/s",
                    what="binary frame of 500 readings, decode + validate",
                    vs="the same readings as JSON samples"),
    ]  # fmt: skip
