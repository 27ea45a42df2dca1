"""FrameDecoder, the worker's cached frame decoder, against decode_frame, the reference: same frames,
same first error, whether the header's signal list is new to it (parsed) or known (looked up)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import frames as frames_module
from streams.exceptions import FrameError
from streams.frames import Frame, FrameDecoder, decode_frame, encode_frame
from tests.unit.test_frames import CASES, GOOD_BODY, T0, _body, _frame, _header, _raw, frames


def _outcome(decode: object, payload: bytes) -> Frame | tuple[str, str]:
    assert callable(decode)
    try:
        result = decode(payload)
    except FrameError as exc:
        return (exc.field, exc.reason)
    assert isinstance(result, Frame)
    return result


def _warm(*payloads: bytes) -> FrameDecoder:
    decoder = FrameDecoder()
    for payload in payloads:
        decoder.decode(payload)
    return decoder


# Valid frames whose signal lists match the CASES' (their default header's, and a two-signal one),
# so that a warm decoder judges the bad headers on its cached path.
PRIMERS = (
    _raw(_header(), GOOD_BODY),
    _raw(_header(signals=[{"signal": "temp", "n": 2}], seq=3), GOOD_BODY),
)


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
@pytest.mark.parametrize("payload", [case[1] for case in CASES], ids=[case[0] for case in CASES])
def test_every_rejection_is_the_reference_one(payload: bytes, warm: bool) -> None:
    decoder = _warm(*PRIMERS) if warm else FrameDecoder()
    expected = _outcome(decode_frame, payload)
    assert isinstance(expected, tuple)
    assert _outcome(decoder.decode, payload) == expected
    # Asked again (now possibly cached), still the same answer.
    assert _outcome(decoder.decode, payload) == expected


def test_known_signal_list_still_checks_the_rest_of_each_frame() -> None:
    decoder = _warm(PRIMERS[0])
    layouts_before = len(decoder._layouts)
    # Same signal list (a cache hit), each frame wrong elsewhere: every one is caught.
    wrong = [
        (_raw(_header(tenant="a/b"), GOOD_BODY), "tenant"),
        (_raw(_header(machine=["m"]), GOOD_BODY), "machine"),
        (_raw(_header(ts=T0 * 100), GOOD_BODY), "ts"),
        (_raw(_header(ts=None), GOOD_BODY), "ts"),
        (_raw(_header(seq=-5), GOOD_BODY), "seq"),
        (_raw(_header(v=2), GOOD_BODY), "v"),
        (_raw(_header(kind="samples"), GOOD_BODY), "kind"),
        (_raw(_header(site=...), GOOD_BODY), "site"),
        (_raw(_header(), _body([T0 + 1, T0], [1.0, 2.0])), "signals.0.ts.1"),
        (_raw(_header(), _body([T0, T0 + 1], [1.0, float("nan")])), "signals.0.values.1"),
        (_raw(_header(), GOOD_BODY[:-8]), "body"),
    ]
    for payload, field in wrong:
        with pytest.raises(FrameError) as info:
            decoder.decode(payload)
        assert info.value.field == field
        assert _outcome(decoder.decode, payload) == _outcome(decode_frame, payload)
    assert len(decoder._layouts) == layouts_before  # all were hits
    # And a valid frame after them decodes as the reference does.
    payload = _raw(_header(tenant="other", ts=T0 + 5), GOOD_BODY)
    assert decoder.decode(payload) == decode_frame(payload)


@settings(max_examples=200, deadline=None)
@given(
    stream=st.lists(frames(), min_size=1, max_size=4),
    repeats=st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=8),
    edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), max_size=3),
)
def test_a_stream_decodes_as_the_reference(
    stream: list[Frame], repeats: list[int], edits: list[tuple[int, int]]
) -> None:
    # Frames repeat (cache hits) and some are damaged after a clean copy went through the cache.
    decoder = FrameDecoder()
    payloads = [encode_frame(frame) for frame in stream]
    for index in repeats:
        payload = payloads[index % len(payloads)]
        assert decoder.decode(payload) == decode_frame(payload)
        damaged = bytearray(payload)
        for position, byte in edits:
            damaged[position % len(damaged)] = byte
        assert _outcome(decoder.decode, bytes(damaged)) == _outcome(decode_frame, bytes(damaged))


def test_the_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames_module, "_MAX_LAYOUTS", 8)
    monkeypatch.setattr(frames_module, "_MAX_KNOWN_IDS", 8)
    decoder = FrameDecoder()
    for i in range(50):
        payload = _raw(_header(signals=[{"signal": f"s{i}", "n": 2}], machine=f"m{i}"), GOOD_BODY)
        decoder.decode(payload)
        decoder.decode(payload)  # the second time on the cached path, which remembers the ids
        assert len(decoder._layouts) <= 8
        assert len(decoder._known_ids) <= 8


def test_huge_signal_lists_are_not_cached() -> None:
    signals = [{"signal": f"signal_with_a_long_name_{i:04d}", "n": 1} for i in range(200)]
    body = _body([T0] * 200, [1.0] * 200)
    payload = _raw(_header(signals=signals), body)
    decoder = FrameDecoder()
    assert decoder.decode(payload) == decode_frame(payload)
    assert not decoder._layouts


def test_decoded_frame_round_trips() -> None:
    frame = _frame()
    payload = encode_frame(frame)
    decoder = FrameDecoder()
    assert decoder.decode(payload) == frame
    assert decoder.decode(payload) == frame
