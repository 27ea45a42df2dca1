"""A JSON object with the same key twice is refused, not read as its last value.

RFC 8259 leaves the meaning of such an object open ("the names within an object SHOULD be unique";
parsers differ), and the JSON parsers linepulse uses keep the last value without a word: a gateway
that wrote ``"good": 5, ..., "good": 500`` would have its count read as 500. So a record, a frame
header or a command with a repeated key is dead-lettered naming the key.

The check runs after the message has been parsed and validated, and costs little: no second parse
of a record's readings. In a text without a backslash (so without escaped quotes) every ``"`` opens
or closes a string; if no ``"`` is followed by white space either, every key is counted by a ``":``
(its closing quote and colon), and any other ``":`` (a string value starting with a colon) only adds
to the count. So when the count equals the keys of the parsed objects, none was repeated: a repeat
lowers only the latter. Otherwise the standard library's parser looks at each object's pairs.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel

__all__ = ["REPEATED_KEY_REASON", "json_keys", "model_keys", "repeated_key"]

# A quote followed by a colon (a key's end) or by white space (a key may end uncounted: `"good" : 5`).
_QUOTE_THEN = re.compile(rb'"[:\t\n\r ]')

REPEATED_KEY_REASON = "the key appears more than once in its object; which value is meant cannot be told"


def repeated_key(raw: bytes | memoryview, keys: int) -> str | None:
    """A key that one object of ``raw`` (valid JSON) has twice, or None; ``keys``: how many keys its
    parsed objects have (:func:`json_keys`, :func:`model_keys`), at most the keys written."""
    data = bytes(raw)
    if data.find(b"\\") < 0:  # memchr, unlike a two-byte search
        ends = _QUOTE_THEN.findall(data)
        if ends.count(b'":') == len(ends) == keys:
            return None
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen and not repeated:
                repeated.append(key)
            seen.add(key)
        return dict(items)

    try:
        json.loads(data, object_pairs_hook=pairs)
    except ValueError:  # what the fast parsers accepted and this one does not: nothing to tell
        return None
    return repeated[0] if repeated else None


def json_keys(value: Any) -> int:
    """The keys of every object in a parsed JSON value. An array is judged by its first item (the
    contract's arrays hold objects only, or none): a mixed one is undercounted, which only sends
    :func:`repeated_key` the slower, exact way."""
    if isinstance(value, dict):
        return len(value) + sum(json_keys(item) for item in value.values() if isinstance(item, dict | list))
    if isinstance(value, list) and value and isinstance(value[0], dict | list):
        return sum(json_keys(item) for item in value)
    return 0


def model_keys(model: BaseModel) -> int:
    """The keys a validated model (extra keys forbidden) was given, its nested models' included."""
    count = len(model.model_fields_set)
    for name in model.model_fields_set:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            count += model_keys(value)
        elif isinstance(value, list | tuple) and value and isinstance(value[0], BaseModel):
            count += sum(model_keys(item) for item in value)
    return count
