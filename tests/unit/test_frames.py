"""The binary batched frame: round trips, zero-copy decoding and one test per rejection."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import pickle
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import frames as frames_module
from streams.contract import TELEMETRY_MAX_MS, TELEMETRY_MIN_MS
from streams.exceptions import FrameError, InvalidTelemetry, StreamsError
from streams.frames import (
    FRAME_MAGIC,
    MAX_HEADER_BYTES,
    Frame,
    SignalBlock,
    decode_frame,
    encode_frame,
    is_frame,
)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MIN_TS = 946_684_800_000
MAX_TS = 4_102_444_800_000


def _block(signal: str = "temp", n: int = 3, unit: str | None = "C", start: int = T0) -> SignalBlock:
    return SignalBlock(
        signal=signal,
        unit=unit,
        ts_ms=start + np.arange(n, dtype=np.int64) * 10,
        values=np.linspace(20.0, 21.0, n),
    )


def _frame(*blocks: SignalBlock, seq: int | None = 7) -> Frame:
    return Frame("acme", "plant-1", "line_a", "m.01", T0, seq, blocks or (_block(),))


def _raw(header: object, body: bytes = b"") -> bytes:
    """A frame assembled by hand, to produce what encode_frame refuses to."""
    raw = orjson.dumps(header)
    raw = raw.ljust(len(raw) + (-len(raw)) % 8)
    return FRAME_MAGIC + struct.pack("<I", len(raw)) + raw + body


def _header(**changes: Any) -> dict[str, Any]:
    header: dict[str, Any] = {
        "v": 1,
        "tenant": "acme",
        "site": "plant-1",
        "line": "line_a",
        "machine": "m.01",
        "ts": T0,
        "signals": [{"signal": "temp", "n": 2}],
    }
    header.update(changes)
    return {key: value for key, value in header.items() if value is not ...}


def _body(ts: list[int], values: list[float]) -> bytes:
    return np.array(ts, dtype="<i8").tobytes() + np.array(values, dtype="<f8").tobytes()


GOOD_BODY = _body([T0, T0 + 1], [1.0, 2.0])


def _expect(payload: bytes, field: str, reason: str = "") -> FrameError:
    with pytest.raises(FrameError) as info:
        decode_frame(payload)
    assert info.value.field == field, str(info.value)
    assert reason in info.value.reason, str(info.value)
    assert str(info.value) == f"{info.value.field}: {info.value.reason}"
    return info.value


def test_hand_built_frame_decodes() -> None:
    frame = decode_frame(_raw(_header(), GOOD_BODY))
    assert (frame.tenant, frame.site, frame.line, frame.machine, frame.ts_ms, frame.seq) == (
        "acme",
        "plant-1",
        "line_a",
        "m.01",
        T0,
        None,
    )
    assert frame.signals == (SignalBlock("temp", None, np.array([T0, T0 + 1]), np.array([1.0, 2.0])),)


def test_a_header_written_otherwise_than_by_encode_frame_decodes_alike() -> None:
    """Spaces, newlines and an escaped character (json.dumps writes ° as \\u00b0): not encode_frame's
    text, so the repeated-key check takes its exact way, and finds nothing to refuse."""
    header = _header(signals=[{"signal": "temp", "unit": "°C", "n": 2}])
    text = json.dumps(header, indent=1).encode()
    assert b"\\u00b0" in text and b"\n" in text
    frame = decode_frame(_text_frame(text, GOOD_BODY))
    assert frame == decode_frame(_raw(header, GOOD_BODY))
    assert frame.signals[0].unit == "°C"


def test_500_readings_decode_equal_and_zero_copy() -> None:
    rng = np.random.default_rng(1)
    ts = T0 + np.cumsum(rng.integers(0, 20, size=500)).astype(np.int64)
    values = rng.normal(50.0, 3.0, size=500)
    payload = encode_frame(_frame(SignalBlock("spindle.current", "A", ts, values)))
    assert len(payload) % 8 == 0 and len(payload) >= 16 * 500
    block = decode_frame(payload).signals[0]
    np.testing.assert_array_equal(block.ts_ms, ts)
    np.testing.assert_array_equal(block.values, values)
    assert block.ts_ms.dtype == np.int64 and block.values.dtype == np.float64
    # Aligned (header padded to 8) and read-only.
    # Views into the message: slices of the frame-wide columns, which are views of the payload.
    assert block.values.base is not None and block.ts_ms.base is not None
    bases: tuple[object, object] = (block.values.base.base, block.ts_ms.base.base)
    assert bases[0] is payload and bases[1] is payload
    assert np.shares_memory(block.values, np.frombuffer(payload, dtype=np.uint8))
    assert block.values.flags.aligned and block.ts_ms.flags.aligned
    assert not block.values.flags.writeable


ids = st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True)
finite = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def blocks(draw: st.DrawFn, signal: str) -> SignalBlock:
    n = draw(st.integers(min_value=1, max_value=40))
    start = draw(st.integers(min_value=MIN_TS, max_value=MAX_TS - 10_000_000))
    steps = draw(st.lists(st.integers(min_value=0, max_value=100_000), min_size=n, max_size=n))
    values = draw(st.lists(finite, min_size=n, max_size=n))
    unit = draw(st.none() | st.text(min_size=1, max_size=32))
    return SignalBlock(
        signal, unit, start + np.cumsum(steps, dtype=np.int64), np.array(values, dtype=np.float64)
    )


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    names = draw(st.lists(ids, min_size=1, max_size=6, unique=True))
    return Frame(
        tenant=draw(ids),
        site=draw(ids),
        line=draw(ids),
        machine=draw(ids),
        ts_ms=draw(st.integers(min_value=MIN_TS, max_value=MAX_TS - 1)),
        seq=draw(st.none() | st.integers(min_value=0, max_value=2**63 - 1)),
        signals=tuple(draw(blocks(name)) for name in names),
    )


@settings(max_examples=200, deadline=None)
@given(frame=frames())
def test_round_trip(frame: Frame) -> None:
    payload = encode_frame(frame)
    assert is_frame(payload)
    assert decode_frame(payload) == frame
    assert encode_frame(decode_frame(payload)) == payload


def test_is_frame() -> None:
    assert is_frame(encode_frame(_frame()))
    assert not is_frame(b'{"v":1}')
    assert not is_frame(b"")
    assert not is_frame(b"LPF")


def test_error_hierarchy_and_pickling() -> None:
    error = FrameError("signals.0.n", "must be positive")
    assert isinstance(error, InvalidTelemetry) and isinstance(error, StreamsError)
    assert str(error) == "signals.0.n: must be positive"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.field, copy.reason) == (error.field, error.reason)


def _text_frame(header: bytes, body: bytes) -> bytes:
    """A frame whose header is ``header`` as written (what orjson cannot produce: a key twice)."""
    padded = header.ljust(len(header) + (-len(header)) % 8)
    return FRAME_MAGIC + struct.pack("<I", len(padded)) + padded + body


def _with_header_length(length: int, rest: bytes = b"") -> bytes:
    return FRAME_MAGIC + struct.pack("<I", length) + rest


Case = tuple[str, bytes, str, str]

CASES: list[Case] = [
    ("empty", b"", "magic", "expected"),
    ("bad magic", b"LPF2" + GOOD_BODY, "magic", "b'LPF2'"),
    ("json record", b'{"v": 1, "kind": "sensor"}', "magic", "expected"),
    ("no header length", FRAME_MAGIC + b"\x10\x00", "header_length", "truncated"),
    ("header past end", _with_header_length(64, b"{}      "), "header_length", "truncated"),
    ("oversized header", _with_header_length(MAX_HEADER_BYTES + 8), "header_length", "exceeds"),
    (
        "unpadded header",
        _with_header_length(12, b'{"v": 1}    ' + GOOD_BODY),
        "header_length",
        "multiple of 8",
    ),
    ("zero header", _with_header_length(0, GOOD_BODY), "header_length", "multiple of 8"),
    ("not json", _with_header_length(8, b"{nope}  " + GOOD_BODY), "header", "not valid UTF-8 JSON"),
    ("not utf-8", _with_header_length(8, b'"\xff\xfe"    ' + GOOD_BODY), "header", "not valid UTF-8 JSON"),
    ("not an object", _raw([1, 2], GOOD_BODY), "header", "must be a JSON object"),
    ("unknown field", _raw(_header(kind="samples"), GOOD_BODY), "kind", "unknown field"),
    ("missing field", _raw(_header(machine=...), GOOD_BODY), "machine", "missing"),
    ("wrong version", _raw(_header(v=2), GOOD_BODY), "v", "must be 1"),
    ("version as bool", _raw(_header(v=True), GOOD_BODY), "v", "must be 1"),
    ("bad tenant", _raw(_header(tenant="a/b"), GOOD_BODY), "tenant", "must match"),
    ("long site", _raw(_header(site="s" * 65), GOOD_BODY), "site", "must match"),
    ("line not a string", _raw(_header(line=5), GOOD_BODY), "line", "must match"),
    ("ts as string", _raw(_header(ts="2026-01-01T00:00:00Z"), GOOD_BODY), "ts", "integer epoch"),
    ("ts too early", _raw(_header(ts=MIN_TS - 1), GOOD_BODY), "ts", "out of range"),
    ("negative seq", _raw(_header(seq=-1), GOOD_BODY), "seq", "from 0 to 2**64 - 1"),
    ("signals not a list", _raw(_header(signals={}), GOOD_BODY), "signals", "must be a list"),
    ("no signals", _raw(_header(signals=[])), "signals", "1 to 256"),
    (
        "too many signals",
        _raw(_header(signals=[{"signal": f"s{i}", "n": 1} for i in range(257)])),
        "signals",
        "1 to 256",
    ),
    ("signal not an object", _raw(_header(signals=["temp"]), GOOD_BODY), "signals.0", "JSON object"),
    (
        "unknown signal field",
        _raw(_header(signals=[{"signal": "temp", "n": 2, "scale": 1}]), GOOD_BODY),
        "signals.0.scale",
        "unknown field",
    ),
    ("missing n", _raw(_header(signals=[{"signal": "temp"}]), GOOD_BODY), "signals.0.n", "missing"),
    (
        "bad signal id",
        _raw(_header(signals=[{"signal": "t emp", "n": 2}]), GOOD_BODY),
        "signals.0.signal",
        "must match",
    ),
    (
        "duplicate signal",
        _raw(_header(signals=[{"signal": "a", "n": 1}, {"signal": "a", "n": 1}]), GOOD_BODY),
        "signals.1.signal",
        "already appears",
    ),
    (
        "empty unit",
        _raw(_header(signals=[{"signal": "temp", "unit": "", "n": 2}]), GOOD_BODY),
        "signals.0.unit",
        "1 to 32",
    ),
    ("n zero", _raw(_header(signals=[{"signal": "temp", "n": 0}])), "signals.0.n", "from 1 to 100000"),
    (
        "n float",
        _raw(_header(signals=[{"signal": "temp", "n": 2.0}]), GOOD_BODY),
        "signals.0.n",
        "from 1 to 100000",
    ),
    (
        "n too large",
        _raw(_header(signals=[{"signal": "temp", "n": 100_001}])),
        "signals.0.n",
        "from 1 to 100000",
    ),
    (
        "body one byte short",
        _raw(_header(), GOOD_BODY[:-1]),
        "body",
        "announces 2 readings (32 bytes) but 31",
    ),
    ("body one byte long", _raw(_header(), GOOD_BODY + b"\0"), "body", "but 33 bytes"),
    (
        "nan value",
        _raw(_header(), _body([T0, T0 + 1], [1.0, float("nan")])),
        "signals.0.values.1",
        "'temp': nan",
    ),
    (
        "inf value",
        _raw(_header(), _body([T0, T0 + 1], [float("-inf"), 1.0])),
        "signals.0.values.0",
        "'temp': -inf",
    ),
    ("backwards", _raw(_header(), _body([T0 + 1, T0], [1.0, 2.0])), "signals.0.ts.1", "oldest first"),
    ("reading too early", _raw(_header(), _body([0, T0], [1.0, 2.0])), "signals.0.ts.0", "out of range"),
    ("reading too late", _raw(_header(), _body([T0, MAX_TS], [1.0, 2.0])), "signals.0.ts.1", "out of range"),
    # Valid JSON with a key twice: its parsers would keep the last value without a word.
    (
        "repeated ts",
        _text_frame(b'{"ts":1,' + orjson.dumps(_header())[1:], GOOD_BODY),
        "ts",
        "more than once",
    ),
    (
        "repeated key in a signal",
        _text_frame(orjson.dumps(_header()).replace(b'"n":2', b'"n":2,"n":3'), GOOD_BODY),
        "n",
        "more than once",
    ),
]


@pytest.mark.parametrize(
    ("payload", "field", "reason"), [case[1:] for case in CASES], ids=[c[0] for c in CASES]
)
def test_rejections_name_the_field(payload: bytes, field: str, reason: str) -> None:
    _expect(payload, field, reason)


TWO_SIGNALS = _header(signals=[{"signal": "a", "n": 2}, {"signal": "b", "n": 3}])


def test_columns_hold_signals_one_after_another() -> None:
    # Signal b starts before signal a ends: order is only required within a signal.
    body = _body([T0 + 5, T0 + 9, T0, T0 + 1, T0 + 1], [1.0, 2.0, 3.0, 4.0, 5.0])
    a, b = decode_frame(_raw(TWO_SIGNALS, body)).signals
    assert a == SignalBlock("a", None, np.array([T0 + 5, T0 + 9]), np.array([1.0, 2.0]))
    assert b == SignalBlock("b", None, np.array([T0, T0 + 1, T0 + 1]), np.array([3.0, 4.0, 5.0]))


@pytest.mark.parametrize(
    ("ts", "values", "field", "reason"),
    [
        ([T0, T0, T0, T0, T0], [1.0, 2.0, 3.0, 4.0, float("nan")], "signals.1.values.2", "signal 'b': nan"),
        ([T0, T0, T0, T0 + 2, T0 + 1], [1.0] * 5, "signals.1.ts.2", "signal 'b'"),
        ([T0, T0 - 1, T0, T0, T0], [1.0] * 5, "signals.0.ts.1", "signal 'a'"),
        ([T0, T0, T0, T0, MAX_TS], [1.0] * 5, "signals.1.ts.2", "out of range"),
        ([0, 0, T0, T0, T0], [1.0] * 5, "signals.0.ts.0", "out of range"),
    ],
)
def test_errors_in_later_signals_are_located(
    ts: list[int], values: list[float], field: str, reason: str
) -> None:
    _expect(_raw(TWO_SIGNALS, _body(ts, values)), field, reason)


def test_huge_finite_values_are_accepted() -> None:
    block = SignalBlock("big", None, np.array([T0, T0]), np.array([1.7e308, 1.7e308]))
    assert decode_frame(encode_frame(_frame(block))).signals == (block,)


Invalid = Callable[[], Frame]

ENCODE_CASES: list[tuple[str, Invalid, str]] = [
    ("bad machine", lambda: Frame("acme", "p", "l", "m 1", T0, None, (_block(),)), "machine"),
    ("no signals", lambda: Frame("acme", "p", "l", "m", T0, None, ()), "signals"),
    (
        "float ts",
        lambda: _frame(SignalBlock("a", None, np.array([1.0 * T0]), np.array([1.0]))),
        "signals.0.ts",
    ),
    (
        "2-D values",
        lambda: _frame(SignalBlock("a", None, np.array([T0]), np.ones((1, 1)))),
        "signals.0.values",
    ),
    (
        "length mismatch",
        lambda: _frame(SignalBlock("a", None, np.array([T0]), np.ones(2))),
        "signals.0.values",
    ),
    ("nan", lambda: _frame(SignalBlock("a", None, np.array([T0]), np.array([np.nan]))), "signals.0.values.0"),
    (
        "empty block",
        lambda: _frame(SignalBlock("a", None, np.array([], np.int64), np.array([]))),
        "signals.0.n",
    ),
]


@pytest.mark.parametrize(
    ("make", "field"), [case[1:] for case in ENCODE_CASES], ids=[c[0] for c in ENCODE_CASES]
)
def test_encode_refuses_what_decode_would_reject(make: Invalid, field: str) -> None:
    with pytest.raises(FrameError) as info:
        encode_frame(make())
    assert info.value.field == field, str(info.value)


def test_encode_rejects_unencodable_unit() -> None:
    with pytest.raises(FrameError) as info:
        encode_frame(_frame(_block(unit="\ud800")))
    assert info.value.field == "header"


def test_encode_accepts_numpy_integers_for_ts_and_seq() -> None:
    frame = Frame("acme", "p", "l", "m", np.int64(T0), np.uint64(2**64 - 1), (_block(),))  # type: ignore[arg-type]
    decoded = decode_frame(encode_frame(frame))
    assert (decoded.ts_ms, decoded.seq) == (T0, 2**64 - 1)
    assert type(decoded.ts_ms) is int


def test_encode_converts_compatible_dtypes() -> None:
    block = SignalBlock("a", None, np.array([T0], dtype=">i8"), np.array([1.5], dtype=">f8"))
    decoded = decode_frame(encode_frame(_frame(block))).signals[0]
    assert decoded.ts_ms.tolist() == [T0] and decoded.values.tolist() == [1.5]


def test_signal_block_equality() -> None:
    assert _block() == _block()
    assert _block() != _block(unit=None)
    assert _block() != _block(n=4)
    assert _block().__eq__("temp") is NotImplemented


def test_decoded_blocks_feed_the_statistics_kernel() -> None:
    # Read-only views straight from the payload are valid input to models.signal_stats.
    from models.signal_stats import new_state, summarize, update

    block = decode_frame(encode_frame(_frame(_block(n=50)))).signals[0]
    state = new_state()
    update(state, block.ts_ms, block.values)
    assert summarize(state).count == 50
    with pytest.raises(TypeError):
        hash(block)


@settings(max_examples=300, deadline=None)
@given(
    frame=frames(),
    edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), max_size=4),
    cut=st.integers(min_value=0),
)
def test_corrupted_frames_raise_only_frame_error(
    frame: Frame, edits: list[tuple[int, int]], cut: int
) -> None:
    # The worker must never crash on input: any damage is either harmless or a FrameError.
    payload = bytearray(encode_frame(frame))
    for position, byte in edits:
        payload[position % len(payload)] = byte
    damaged = bytes(payload[: len(payload) - cut % 64])
    with contextlib.suppress(FrameError):
        decode_frame(damaged)


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_frame_error(payload: bytes) -> None:
    with contextlib.suppress(FrameError):
        decode_frame(FRAME_MAGIC + payload)


@settings(max_examples=300, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=4),
    data=st.data(),
)
def test_the_column_kernel_agrees_with_the_worded_checks(sizes: list[int], data: st.DataObject) -> None:
    """The one-pass kernel decides; the numpy checks word the error: they must agree on every frame."""
    n = sum(sizes)
    edges = [0, TELEMETRY_MIN_MS - 1, TELEMETRY_MIN_MS, TELEMETRY_MAX_MS - 1]
    edges.append(TELEMETRY_MAX_MS)
    ts_values = st.one_of(st.sampled_from(edges), st.integers(min_value=T0, max_value=T0 + 50))
    ts = np.array(data.draw(st.lists(ts_values, min_size=n, max_size=n)), dtype=np.int64)
    if data.draw(st.booleans()):
        ts = np.sort(ts)  # mostly valid frames too
    values = np.array(
        data.draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n)),
        dtype=np.float64,
    )
    ends = list(itertools.accumulate(sizes))
    names = [f"s{i}" for i in range(len(sizes))]
    try:
        frames_module._check_columns(names, ends, ts, values)
        worded_ok = True
    except FrameError:
        worded_ok = False
    newest = frames_module._newest_if_valid(
        ts, values, np.array(ends, dtype=np.int64), TELEMETRY_MIN_MS, TELEMETRY_MAX_MS
    )
    assert (newest >= 0) == worded_ok
    if worded_ok:
        assert newest == int(ts.max())


def test_decoded_blocks_are_plain_frozen_signal_blocks() -> None:
    """_columns builds blocks with the slots' setters (frames._block), not SignalBlock's __init__:
    the same objects, as frozen."""
    ts, values = np.array([T0, T0 + 1]), np.array([1.0, 2.0])
    fast = frames_module._block("temp", "C", ts, values)
    assert type(fast) is SignalBlock and fast == SignalBlock("temp", "C", ts, values)
    assert (fast.signal, fast.unit, fast.ts_ms, fast.values) == ("temp", "C", ts, values)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.signal = "other"  # type: ignore[misc]
    frame = _frame(_block("a", 3), _block("b", 2, unit=None))
    decoded = decode_frame(encode_frame(frame))
    assert decoded == frame and all(type(block) is SignalBlock for block in decoded.signals)
