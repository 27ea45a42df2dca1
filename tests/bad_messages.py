"""Malformed telemetry of every kind the issue lists, derived from a valid record, for the tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["VARIANTS", "BadMessage", "bad_messages", "key_of"]


@dataclass(frozen=True)
class BadMessage:
    name: str
    key: bytes
    value: bytes
    code: str  # the expected rejection code
    field: str  # the field the rejection must name


def key_of(record: dict[str, Any]) -> bytes:
    return f"{record['tenant']}/{record['machine']}".encode()


def _dumps(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)


def _with(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**record, **changes}


def _without(record: dict[str, Any], field: str) -> dict[str, Any]:
    return {name: value for name, value in record.items() if name != field}


def _variants(
    count: dict[str, Any], sensor: dict[str, Any], state: dict[str, Any], samples: dict[str, Any]
) -> list[Callable[[int], BadMessage]]:
    far_future = 4_000_000_000_000  # year 2096: plausible for the contract, far ahead of the clock
    # A JSON integer beyond a 64-bit float's range: valid JSON, exact in Python, overflows as a reading.
    beyond_float = b"1" + b"0" * 400
    return [
        lambda i: BadMessage(
            "bad_json", key_of(count), b'{"v":1,"tenant":"' + str(i).encode() + b'",', "invalid_json", "value"
        ),
        lambda i: BadMessage("not_an_object", key_of(count), b"[1,2,3]", "invalid_schema", "record"),
        lambda i: BadMessage(
            "missing_ts", key_of(count), _dumps(_without(count, "ts")), "invalid_schema", "ts"
        ),
        lambda i: BadMessage(
            "wrong_type", key_of(count), _dumps(_with(count, good=str(i))), "invalid_schema", "good"
        ),
        lambda i: BadMessage(
            "nan",
            key_of(sensor),
            _dumps(sensor).replace(b'"value":1.5', b'"value":NaN'),
            "invalid_schema",
            "value",
        ),
        lambda i: BadMessage(
            "infinity",
            key_of(sensor),
            _dumps(sensor).replace(b'"value":1.5', b'"value":Infinity'),
            "invalid_schema",
            "value",
        ),
        lambda i: BadMessage(
            "huge_integer",
            key_of(sensor),
            _dumps(sensor).replace(b'"value":1.5', b'"value":' + beyond_float),
            "invalid_schema",
            "value",
        ),
        lambda i: BadMessage(
            "huge_integer_in_samples",
            key_of(samples),
            _dumps(samples).replace(b"[1.5,2.5]", b"[1.5," + beyond_float + b"]"),
            "invalid_schema",
            "signals.0.values.1",
        ),
        lambda i: BadMessage(
            "boolean_version", key_of(count), _dumps(_with(count, v=True)), "invalid_schema", "v"
        ),
        lambda i: BadMessage(
            "unknown_kind", key_of(count), _dumps(_with(count, kind="vibes")), "invalid_schema", "kind"
        ),
        lambda i: BadMessage(
            "unknown_state", key_of(state), _dumps(_with(state, state="napping")), "invalid_schema", "state"
        ),
        lambda i: BadMessage(
            "negative_count", key_of(count), _dumps(_with(count, scrap=-1 - i)), "invalid_schema", "scrap"
        ),
        lambda i: BadMessage(
            "huge_payload",
            key_of(sensor),
            _dumps(_with(sensor, unit="x" * (2 * 1024 * 1024))),
            "too_large",
            "value",
        ),
        lambda i: BadMessage(
            "future_ts", key_of(count), _dumps(_with(count, ts=far_future + i)), "future_timestamp", "ts"
        ),
        lambda i: BadMessage(
            "path_in_id",
            b"../etc/passwd",
            _dumps(_with(count, machine="../etc/passwd")),
            "invalid_schema",
            "machine",
        ),
        lambda i: BadMessage(
            # Valid JSON, but which count is meant? The parsers would silently keep the last one.
            "repeated_key",
            key_of(count),
            b'{"good":' + str(500 + i).encode() + b"," + _dumps(count)[1:],
            "invalid_schema",
            "good",
        ),
        lambda i: BadMessage(
            "long_id",
            ("a" * 5000).encode(),
            _dumps(_with(count, tenant="a" * 5000)),
            "invalid_schema",
            "tenant",
        ),
    ]


VARIANTS = 17


def bad_messages(
    count: dict[str, Any], sensor: dict[str, Any], state: dict[str, Any], samples: dict[str, Any], total: int
) -> Iterator[BadMessage]:
    """``total`` malformed messages cycling through every variant; ``sensor['value']`` must be 1.5 and
    ``samples`` must have one signal with ``values`` ``[1.5, 2.5]``."""
    variants = _variants(count, sensor, state, samples)
    assert len(variants) == VARIANTS
    for index, make in zip(range(total), itertools.cycle(variants), strict=False):
        yield make(index)
