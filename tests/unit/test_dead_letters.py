"""Dead-letter headers: the original message's first, as they came, then linepulse's, within the room."""

from __future__ import annotations

from streams.dead_letters import CONTEXT_MAX_BYTES, dead_letter_headers, error_headers
from streams.decode import Rejection
from streams.topics import DEAD_LETTER_HEADROOM_BYTES

REJECTION = Rejection("invalid_schema", "good", "Input should be a valid integer")


def test_original_headers_come_first_in_their_order_null_values_and_repeats_included() -> None:
    original = [("trace-id", b"abc"), ("gateway", None), ("trace-id", b"def"), ("linepulse.error.code", b"x")]
    headers = dead_letter_headers(original, REJECTION, "telemetry", 2, 41)
    assert headers[:4] == original
    assert headers[4:] == error_headers(REJECTION, "telemetry", 2, 41)
    # A reader taking them into a dict gets this rejection's verdict, not the replayed one's.
    assert dict(headers)["linepulse.error.code"] == b"invalid_schema"
    assert dict(headers)["linepulse.source.offset"] == b"41"


def test_no_headers_and_a_mapping_of_headers() -> None:
    assert dead_letter_headers(None, REJECTION, "t", 0, 0) == error_headers(REJECTION, "t", 0, 0)
    assert dead_letter_headers([], REJECTION, "t", 0, 0) == error_headers(REJECTION, "t", 0, 0)
    assert dead_letter_headers({"a": b"1"}, REJECTION, "t", 0, 0)[0] == ("a", b"1")


def test_linepulse_headers_fit_the_dead_letter_room_whatever_the_input_quotes() -> None:
    """An unknown field's name or an exception's message can be megabytes: cut, and marked so."""
    huge = Rejection("processing_error", "x" * 3_000_000, "Ü" * 3_000_000)
    headers = error_headers(huge, "t" * 249, 2**31 - 1, 2**63 - 1)
    size = sum(len(name.encode()) + len(value) for name, value in headers)
    assert size <= CONTEXT_MAX_BYTES <= DEAD_LETTER_HEADROOM_BYTES
    reason = dict(headers)["linepulse.error.reason"]
    assert reason.endswith(b" [cut]") and reason[:-6].decode() == "Ü" * (len(reason[:-6]) // 2)
    assert dict(headers)["linepulse.error.field"].startswith(b"xxx")
