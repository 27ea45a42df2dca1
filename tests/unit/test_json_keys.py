"""repeated_key: a key twice in one JSON object is found, however the text is written; none is invented."""

from __future__ import annotations

import json
import random
from typing import Any

import orjson
import pytest

from streams.contract import telemetry_adapter
from streams.json_keys import json_keys, model_keys, repeated_key
from tests.unit.test_decode import COUNT, SAMPLES, SENSOR, STATE


def _reference(text: bytes) -> str | None:
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [key for key, _ in items]
        found.extend(name for index, name in enumerate(names) if name in names[:index])
        return dict(items)

    json.loads(text, object_pairs_hook=pairs)
    return found[0] if found else None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b'{"good":5,"scrap":1}', None),
        (b'{"good":5,"scrap":1,"good":500}', "good"),
        (b'{"good" : 5, "good" : 6}', "good"),  # a space before the colon: the exact way
        (b'{"reason":"a \\": b","good":5}', None),  # an escaped quote and colon inside a string
        (b'{"reason":"a \\": b","good":5,"good":6}', "good"),
        (b'{"signals":[{"signal":"t","n":2},{"signal":"p","n":2,"n":3}]}', "n"),
        (b'{"a":{"b":1},"c":{"b":2}}', None),  # the same name in two objects
        (b'{"values":[1,{"x":1,"x":2}]}', "x"),  # a mixed array: undercounted, so checked exactly
        (b'{"unit":"\\\\","good":5}', None),  # a string ending in an escaped backslash
        (b"[]", None),
    ],
)
def test_repeated_keys_are_found_and_none_invented(text: bytes, expected: str | None) -> None:
    assert repeated_key(text, json_keys(orjson.loads(text))) == expected == _reference(text)


def _random_value(rng: random.Random, depth: int) -> Any:
    kind = rng.random()
    if depth > 2 or kind < 0.4:
        return rng.choice([1, 2.5, "x", 'q"uote', "co:lon", "\\", True, None])
    if kind < 0.7:
        if rng.random() < 0.5:
            return [rng.randint(0, 9) for _ in range(rng.randint(0, 4))]
        return [_random_object(rng, depth + 1) for _ in range(rng.randint(1, 3))]
    return _random_object(rng, depth + 1)


def _random_object(rng: random.Random, depth: int) -> dict[str, Any]:
    names = ["a", "b", "c", 'd"q', "e:f", "g h"]
    return {rng.choice(names): _random_value(rng, depth) for _ in range(rng.randint(0, 4))}


def _write(value: Any, rng: random.Random, repeat: bool) -> str:
    """JSON text of ``value`` with random spacing; ``repeat``: some object gets a key twice."""
    space = rng.choice(["", " ", "\n"])
    if isinstance(value, dict):
        items = [
            f"{json.dumps(key)}{space}:{space}{_write(item, rng, repeat)}" for key, item in value.items()
        ]
        if repeat and value and rng.random() < 0.5:
            key = rng.choice(list(value))
            items.append(f"{json.dumps(key)}:{_write(value[key], rng, False)}")
        return "{" + f",{space}".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_write(item, rng, repeat) for item in value) + "]"
    return json.dumps(value)


def test_random_objects_agree_with_the_standard_librarys_pairs() -> None:
    rng = random.Random(16)
    repeats = 0
    for _ in range(3000):
        text = _write(_random_object(rng, 0), rng, repeat=rng.random() < 0.5).encode()
        expected = _reference(text)
        repeats += expected is not None
        assert repeated_key(text, json_keys(orjson.loads(text))) == expected, text
    assert repeats > 300  # both kinds were judged


def test_a_validated_records_keys_are_counted_as_written() -> None:
    """Every kind of record takes the quick way when it repeats no key (the model counts its keys
    without a second parse of the readings), and the exact way finds a repeat inside a signal."""
    records: list[dict[str, Any]] = [COUNT, SENSOR, STATE, SAMPLES, {**SAMPLES, "seq": 4}]
    for record in records:
        text = orjson.dumps(record)
        assert model_keys(telemetry_adapter.validate_json(text)) == json_keys(orjson.loads(text)), record
        assert repeated_key(text, model_keys(telemetry_adapter.validate_json(text))) is None
    repeated = orjson.dumps(SAMPLES).replace(b'"signal":', b'"unit":"C","unit":"C","signal":', 1)
    assert repeated_key(repeated, model_keys(telemetry_adapter.validate_json(repeated))) == "unit"
