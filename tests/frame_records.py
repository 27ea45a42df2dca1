"""JSON ``samples`` records as the binary frames carrying the same readings, for tests that send
or read frames and compare with the JSON form (streams.frames)."""

from __future__ import annotations

import numpy as np
import orjson

from streams.frames import Frame, SignalBlock, encode_frame

__all__ = ["as_frame"]


def as_frame(value: bytes) -> bytes:
    """A JSON ``samples`` record as the binary frame carrying the same readings."""
    record = orjson.loads(value)
    blocks = tuple(
        SignalBlock(
            series["signal"],
            series.get("unit"),
            np.array(series["ts"], dtype=np.int64),
            np.array(series["values"], dtype=np.float64),
        )
        for series in record["signals"]
    )
    ids = (record["tenant"], record["site"], record["line"], record["machine"])
    return encode_frame(Frame(*ids, record["ts"], record.get("seq"), blocks))
