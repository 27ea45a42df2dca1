"""The headers of a dead letter: the original message's, then linepulse's error context.

As Kafka Connect's dead-letter queue does, the original message is kept whole: its key, its value and
its headers (a trace id, a schema id, a gateway's own metadata), in their order, a null value
included, so whoever fixes and re-produces it loses nothing. linepulse's ``linepulse.error.*`` and
``linepulse.source.*`` headers come after them. A header name may then appear twice (a dead letter
fixed, replayed and rejected again carries the old verdict too): the last one is this rejection's, as
a reader taking the headers into a dict gets it.

linepulse's headers are capped (:data:`CONTEXT_MAX_BYTES` in all), so a dead letter is never more
than its original message plus that: the dead-letter topic's size room
(:data:`streams.topics.DEAD_LETTER_HEADROOM_BYTES`) holds them. A field path or reason can quote the
input (an unknown field's name, an exception's message), which may be megabytes long.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from streams.decode import Rejection

__all__ = [
    "CONTEXT_MAX_BYTES",
    "Header",
    "dead_letter_headers",
    "error_headers",
]

Header = tuple[str, bytes | None]

_FIELD_MAX_BYTES: Final = 512
_REASON_MAX_BYTES: Final = 4096
_TOPIC_MAX_BYTES: Final = 249  # Kafka's longest topic name
_NAMES_AND_NUMBERS_BYTES: Final = 512  # the six header names, a partition and an offset
CONTEXT_MAX_BYTES: Final = (
    _FIELD_MAX_BYTES + _REASON_MAX_BYTES + _TOPIC_MAX_BYTES + _NAMES_AND_NUMBERS_BYTES + 64  # the code
)
_CUT_MARK: Final = b" [cut]"


def error_headers(rejection: Rejection, topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    """linepulse's context headers, Kafka Connect-style, so an operator can fix and replay the bytes."""
    return [
        ("linepulse.error.code", _capped(rejection.code, 64)),
        ("linepulse.error.field", _capped(rejection.field, _FIELD_MAX_BYTES)),
        ("linepulse.error.reason", _capped(rejection.reason, _REASON_MAX_BYTES)),
        ("linepulse.source.topic", _capped(topic, _TOPIC_MAX_BYTES)),
        ("linepulse.source.partition", str(partition).encode()),
        ("linepulse.source.offset", str(offset).encode()),
    ]


def dead_letter_headers(
    original: Iterable[Header] | Mapping[str, bytes | None] | None,
    rejection: Rejection,
    topic: str,
    partition: int,
    offset: int,
) -> list[Header]:
    """The dead letter's headers: ``original`` (the consumed message's, as they came) first.

    Faust hands a consumed message's headers over as the client read them, a list of pairs; a
    mapping (what Faust also accepts for a send) is taken in its order."""
    kept = list(original.items() if isinstance(original, Mapping) else original or ())
    return [*kept, *error_headers(rejection, topic, partition, offset)]


def _capped(text: str, limit: int) -> bytes:
    raw = text.encode()
    if len(raw) <= limit:
        return raw
    # Cut on a character boundary, and say so: a reason that ends mid-word is not mistaken for whole.
    kept = raw[: limit - len(_CUT_MARK)].decode("utf-8", "ignore").encode()
    return kept + _CUT_MARK
