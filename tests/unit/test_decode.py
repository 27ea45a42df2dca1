"""The input boundary: every malformed message is rejected with its field and reason, valid ones pass."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest

from models.plant import PlantConfig
from streams.contract import _parse_timestamp
from streams.decode import MAX_PAST_MS_DEFAULT, Accepted, Rejection, TelemetryDecoder
from streams.frames import Frame, SignalBlock, encode_frame
from tests.bad_messages import VARIANTS, bad_messages, key_of

PLANT = PlantConfig.model_validate(
    {
        "timezone": "Europe/Berlin",
        "machines": [{"tenant": "acme", "site": "p1", "line": "L1", "id": "M01", "ideal_cycle_s": 10}],
    }
)
NOW = int(time.time() * 1000)
BASE: dict[str, Any] = {
    "v": 1,
    "tenant": "acme",
    "site": "p1",
    "line": "L1",
    "machine": "M01",
    "ts": NOW - 1000,
}
COUNT = {**BASE, "kind": "count", "good": 5, "scrap": 1}
SENSOR = {**BASE, "kind": "sensor", "signal": "temp", "value": 1.5, "unit": "C"}
STATE = {**BASE, "kind": "state", "state": "running"}
SAMPLES = {
    **BASE,
    "kind": "samples",
    "signals": [{"signal": "temp", "ts": [NOW - 2000, NOW - 1000], "values": [1.5, 2.5]}],
}


@pytest.fixture
def decoder() -> TelemetryDecoder:
    return TelemetryDecoder(PLANT, max_payload_bytes=1024 * 1024, max_future_ms=300_000)


@pytest.mark.parametrize(
    "record", [COUNT, SENSOR, STATE, SAMPLES], ids=["count", "sensor", "state", "samples"]
)
def test_valid_records_are_accepted(decoder: TelemetryDecoder, record: dict[str, Any]) -> None:
    result = decoder.decode(key_of(record), orjson.dumps(record), NOW)
    assert isinstance(result, Accepted)
    assert result.spec.id == "M01"


def test_rfc3339_and_epoch_ms_mean_the_same_instant(decoder: TelemetryDecoder) -> None:
    text = {**COUNT, "ts": "2026-11-25T06:00:00.250+01:00"}
    millis = {**COUNT, "ts": 1795582800250}
    a = decoder.decode(key_of(text), orjson.dumps(text), NOW)
    b = decoder.decode(key_of(millis), orjson.dumps(millis), NOW)
    assert isinstance(a, Accepted) and isinstance(b, Accepted)
    assert a.event.ts == b.event.ts == 1795582800250  # type: ignore[union-attr]


def test_rfc3339_times_parse_to_the_exact_millisecond() -> None:
    """Every millisecond, not one early: float seconds times 1000 truncated some (1,755 of 300,000
    random times between 2000 and 2100, e.g. 2039-07-06T01:24:33.693Z as ...692)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    rng = np.random.default_rng(3)
    for ms in [2193528273693, *rng.integers(946_684_800_000, 4_102_444_800_000, 20_000).tolist()]:
        text = (epoch + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")
        assert _parse_timestamp(text) == ms, text
        assert _parse_timestamp(text.replace("+00:00", "Z")) == ms


@pytest.mark.parametrize(
    "bad", list(bad_messages(COUNT, SENSOR, STATE, SAMPLES, VARIANTS)), ids=lambda bad: bad.name
)
def test_each_malformed_kind_is_rejected_naming_the_field(decoder: TelemetryDecoder, bad: Any) -> None:
    result = decoder.decode(bad.key, bad.value, NOW)
    assert isinstance(result, Rejection), bad.name
    assert (result.code, result.field) == (bad.code, bad.field)
    assert result.reason


def test_seq_is_bounded_as_the_frames_u64(decoder: TelemetryDecoder) -> None:
    for seq, accepted in ((2**64 - 1, True), (2**64, False), (10**400, False)):
        # Written by hand: orjson writes no integer beyond 64 bits.
        value = orjson.dumps({**COUNT, "seq": 0}).replace(b'"seq":0', f'"seq":{seq}'.encode())
        result = decoder.decode(key_of(COUNT), value, NOW)
        assert isinstance(result, Accepted) is accepted, (seq, result)
        assert accepted or (isinstance(result, Rejection) and result.field == "seq"), result


def test_naive_timestamp_is_rejected(decoder: TelemetryDecoder) -> None:
    record = {**COUNT, "ts": "2026-11-25T06:00:00"}
    result = decoder.decode(key_of(record), orjson.dumps(record), NOW)
    assert isinstance(result, Rejection) and result.field == "ts"


def test_key_must_be_tenant_slash_machine(decoder: TelemetryDecoder) -> None:
    for key in (None, b"acme/M02", b"M01"):
        result = decoder.decode(key, orjson.dumps(COUNT), NOW)
        assert isinstance(result, Rejection) and (result.code, result.field) == ("key_mismatch", "key")


def test_unknown_machine_and_wrong_line_are_rejected(decoder: TelemetryDecoder) -> None:
    other = {**COUNT, "machine": "M99"}
    result = decoder.decode(key_of(other), orjson.dumps(other), NOW)
    assert isinstance(result, Rejection) and result.code == "unknown_machine"
    moved = {**COUNT, "line": "L2"}
    result = decoder.decode(key_of(moved), orjson.dumps(moved), NOW)
    assert isinstance(result, Rejection) and result.field == "line"


def test_a_limit_inverted_against_the_plant_files_other_limit_is_rejected_naming_it() -> None:
    """A part with only ``lsl`` is judged against the configured ``usl``: inverted, every part would
    be out of spec. Its own pair is the contract's (invalid_schema), the configured pair the plant's."""
    plant = PlantConfig.model_validate(
        {**PLANT.model_dump(), "monitoring": {"overrides": {"len_mm": {"lsl": 2.0, "usl": 3.0}}}}
    )
    decoder = TelemetryDecoder(plant, max_payload_bytes=1024 * 1024, max_future_ms=300_000)
    part = {**BASE, "kind": "quality", "characteristic": "len_mm", "value": 3.5}
    for own, limit, other in (("lsl", 4.0, "usl 3.0"), ("usl", 1.5, "lsl 2.0")):
        record = {**part, own: limit}
        result = decoder.decode(key_of(record), orjson.dumps(record), NOW)
        assert isinstance(result, Rejection), own
        assert (result.code, result.field) == ("spec_limits_conflict", own)
        assert f"{own} {limit}" in result.reason and f"plant file's {other}" in result.reason
    for accepted in ({**part, "lsl": 2.5}, {**part, "usl": 4.0}, {**part, "lsl": 4.0, "usl": 5.0}, part):
        assert isinstance(decoder.decode(key_of(accepted), orjson.dumps(accepted), NOW), Accepted), accepted
    # Another characteristic has no configured limits: any one limit of its own is fine.
    bore = {**part, "characteristic": "bore", "lsl": 40.0}
    assert isinstance(decoder.decode(key_of(bore), orjson.dumps(bore), NOW), Accepted)


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({**COUNT, "product": "-"}, "product"),
        ({**COUNT, "scrap_reason": "-"}, "scrap_reason"),
        ({**STATE, "state": "down", "reason": "-"}, "reason"),
        ({**BASE, "kind": "quality", "characteristic": "d", "value": 1.0, "product": "-"}, "product"),
    ],
)
def test_a_code_of_a_lone_dash_is_rejected(
    decoder: TelemetryDecoder, record: dict[str, Any], field: str
) -> None:
    """A lone dash says "none" in capability rows, cycle statistics and metric labels: a product "-"
    merged with the parts that had no product."""
    result = decoder.decode(key_of(record), orjson.dumps(record), NOW)
    assert isinstance(result, Rejection) and result.code == "invalid_schema"
    assert result.field.endswith(field) and "'-'" in result.reason
    fine = {**record, field: "-x-"}
    assert isinstance(decoder.decode(key_of(fine), orjson.dumps(fine), NOW), Accepted)


def test_count_needs_a_quantity(decoder: TelemetryDecoder) -> None:
    record = {key: value for key, value in COUNT.items() if key not in ("good", "scrap")}
    result = decoder.decode(key_of(record), orjson.dumps(record), NOW)
    assert isinstance(result, Rejection) and result.code == "invalid_schema"


def test_json_samples_and_binary_frames_decode_to_the_same_arrays(decoder: TelemetryDecoder) -> None:
    times = [NOW - 3000, NOW - 2000, NOW - 1000]
    values = [1.0, 2.5, -3.0]
    samples = {
        **BASE,
        "kind": "samples",
        "signals": [{"signal": "temp", "unit": "C", "ts": times, "values": values}],
    }
    frame = Frame(
        tenant="acme",
        site="p1",
        line="L1",
        machine="M01",
        ts_ms=BASE["ts"],
        seq=None,
        signals=(SignalBlock("temp", "C", np.array(times, np.int64), np.array(values, np.float64)),),
    )
    from_json = decoder.decode(key_of(BASE), orjson.dumps(samples), NOW)
    from_frame = decoder.decode(key_of(BASE), encode_frame(frame), NOW)
    assert isinstance(from_json, Accepted) and isinstance(from_frame, Accepted)
    for decoded in (from_json.event, from_frame.event):
        assert isinstance(decoded, Frame)
        np.testing.assert_array_equal(decoded.signals[0].ts_ms, times)
        np.testing.assert_array_equal(decoded.signals[0].values, values)


@pytest.mark.parametrize("cut_after_ms", [-5000, 0, 700])
def test_a_frame_and_its_json_samples_have_the_same_newest_event_time(
    decoder: TelemetryDecoder, cut_after_ms: int
) -> None:
    """The newest event time is the header's ``ts`` or the newest reading's, whichever is later; the
    frame decoder reads it off its checked columns, the JSON path off the blocks."""
    series = {
        "temp": [NOW - 3000, NOW - 2000],
        "load": [NOW - 2500, NOW - 2500, NOW - 1500],
        "rpm": [NOW - 4000],
    }
    cut = NOW - 1500 + cut_after_ms
    record = {
        **BASE,
        "ts": cut,
        "kind": "samples",
        "signals": [
            {"signal": name, "ts": times, "values": [float(i) for i in range(len(times))]}
            for name, times in series.items()
        ],
    }
    blocks = tuple(
        SignalBlock(name, None, np.array(times, np.int64), np.arange(len(times), dtype=np.float64))
        for name, times in series.items()
    )
    frame = Frame("acme", "p1", "L1", "M01", cut, None, blocks)
    from_json = decoder.decode(key_of(BASE), orjson.dumps(record), NOW)
    from_frame = decoder.decode(key_of(BASE), encode_frame(frame), NOW)
    again = decoder.decode(key_of(BASE), encode_frame(frame), NOW)  # the cached header's path
    assert (
        isinstance(from_json, Accepted) and isinstance(from_frame, Accepted) and isinstance(again, Accepted)
    )
    assert from_json.newest_ms == from_frame.newest_ms == again.newest_ms == max(cut, NOW - 1500)


def test_samples_with_mismatched_lengths_are_rejected(decoder: TelemetryDecoder) -> None:
    samples = {
        **BASE,
        "kind": "samples",
        "signals": [{"signal": "temp", "ts": [NOW - 5, NOW - 4], "values": [1.0]}],
    }
    result = decoder.decode(key_of(BASE), orjson.dumps(samples), NOW)
    assert isinstance(result, Rejection) and result.field.startswith("signals.0")


def test_the_future_is_judged_against_the_message_kafka_timestamp(decoder: TelemetryDecoder) -> None:
    """Like the broker's message.timestamp.after.max.ms: the limit is measured from the message's
    own Kafka timestamp, whatever the decoding machine's clock says."""
    later = {**COUNT, "ts": NOW + 3_600_000}  # an hour ahead of the clock
    assert isinstance(decoder.decode(key_of(later), orjson.dumps(later), NOW + 3_600_000 - 300_000), Accepted)
    result = decoder.decode(key_of(later), orjson.dumps(later), NOW + 3_600_000 - 300_001)
    assert isinstance(result, Rejection) and (result.code, result.field) == ("future_timestamp", "ts")
    # A millisecond over shows as such: "300 s ahead (limit 300 s)" read as if 300 s were allowed.
    assert result.reason == "300.001 s ahead of the message's Kafka timestamp (limit 300 s)"


def test_the_past_is_judged_against_the_message_kafka_timestamp(decoder: TelemetryDecoder) -> None:
    """A device whose clock fell back to 2000 (a dead battery) made its machine's first event 26
    years old: every window since was built and sent. The oldest reading of a batch counts."""
    limit = MAX_PAST_MS_DEFAULT
    decoder = TelemetryDecoder(PLANT, max_payload_bytes=1024 * 1024, max_future_ms=300_000, max_past_ms=limit)
    old = {**COUNT, "ts": NOW - limit}
    assert isinstance(decoder.decode(key_of(old), orjson.dumps(old), NOW), Accepted)
    older = {**COUNT, "ts": NOW - limit - 1}
    result = decoder.decode(key_of(older), orjson.dumps(older), NOW)
    assert isinstance(result, Rejection) and (result.code, result.field) == ("past_timestamp", "ts")
    seconds = limit // 1000
    said = f"{seconds}.001 s before the message's Kafka timestamp (limit {seconds} s"
    assert result.reason.startswith(said), result.reason
    reset = {**STATE, "ts": "2000-01-01T00:00:05Z"}
    result = decoder.decode(key_of(reset), orjson.dumps(reset), NOW)
    assert isinstance(result, Rejection) and result.code == "past_timestamp"
    # A batch whose header is recent but one of its readings is not: as JSON samples and as a frame.
    times = [NOW - limit - 5, NOW - 1000]
    samples = {**SAMPLES, "signals": [{"signal": "temp", "ts": times, "values": [1.0, 2.0]}]}
    frame = Frame(
        "acme", "p1", "L1", "M01", NOW - 1000, None,
        (SignalBlock("temp", None, np.array(times, np.int64), np.array([1.0, 2.0])),),
    )  # fmt: skip
    for payload in (orjson.dumps(samples), encode_frame(frame), encode_frame(frame)):  # (cached header)
        result = decoder.decode(key_of(BASE), payload, NOW)
        assert isinstance(result, Rejection) and result.code == "past_timestamp", result
    strict = TelemetryDecoder(PLANT, max_payload_bytes=1024 * 1024, max_future_ms=300_000, max_past_ms=60_000)
    recent = {**COUNT, "ts": NOW - 60_001}
    assert isinstance(strict.decode(key_of(recent), orjson.dumps(recent), NOW), Rejection)
    assert isinstance(strict.decode(key_of(recent), orjson.dumps(recent), None), Accepted), "no timestamp"
    unjudged = TelemetryDecoder(PLANT, max_payload_bytes=1024 * 1024, max_future_ms=300_000)
    assert isinstance(unjudged.decode(key_of(reset), orjson.dumps(reset), NOW), Accepted), "None: not judged"


def test_a_message_without_a_kafka_timestamp_is_not_judged(decoder: TelemetryDecoder) -> None:
    far = {**COUNT, "ts": 4_000_000_000_000}  # year 2096, within the contract's bounds
    assert isinstance(decoder.decode(key_of(far), orjson.dumps(far), None), Accepted)
