"""Telemetry files: what ``analyze`` and ``train`` read, the records of a topic one after another.

A file holds JSON records, one per line (JSON Lines), and binary frames (``LPF1``, docs/telemetry.md)
in any mix. A frame is self-delimiting (its header gives its size), so it is read whole whatever bytes
its columns hold, newlines included; one newline straight after a frame is its terminator and is
skipped, so frames may be written bare, one after another, or each followed by ``\\n`` as lines are.
Blank lines are skipped but counted, so a JSON Lines file's record numbers are its line numbers.

A frame whose size cannot be read (a damaged prefix or header) ends the file: nothing after it can
be located reliably, since frame bytes may look like anything. It comes as the last record, with
``unreadable`` set and the rest of the file's size, so the caller reports it instead of
dead-lettering fragments of frames as records.

A frame cut short (a gateway's write that crashed) still declares its whole size, so it takes the
bytes of the records after it. When such a frame fails to decode, the caller asks
:meth:`TelemetryRecords.read_on_within` for a whole record starting inside it, and reading goes on
from there: the valid records after a cut frame are read, not lost inside its dead letter.
"""

from __future__ import annotations

import codecs
import mmap
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson

from service.exceptions import ConfigError
from streams.exceptions import FrameError
from streams.frames import FRAME_MAGIC, MAX_HEADER_BYTES, frame_size

__all__ = ["FileRecord", "TelemetryRecords", "check_telemetry_file", "open_records", "read_records"]

# Kept of an unreadable frame for its dead letter: the prefix and the largest header, what is damaged.
_UNREADABLE_KEPT: Final = 8 + MAX_HEADER_BYTES


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One record of a telemetry file: a JSON line (without its line end) or a whole frame."""

    number: int  # 1-based; every line, blank ones included, and every frame counts one
    offset: int  # of its first byte in the file
    raw: bytes
    unreadable: FrameError | None = None  # a frame of unknown size: ``raw`` is its start only
    rest_bytes: int = 0  # with ``unreadable``: the bytes from ``offset`` to the end, not read


# Files that are not telemetry as written, named by their first bytes: read as lines they were
# all dead letters, and the command succeeded with empty results.
_NOT_TELEMETRY: Final = (
    (b"\x1f\x8b", "is gzip-compressed: decompress it first (gunzip -k FILE)"),
    (b"\x28\xb5\x2f\xfd", "is zstd-compressed: decompress it first (zstd -d FILE)"),
    (b"\xff\xfe", "is UTF-16 text: telemetry files are UTF-8 (iconv -f UTF-16 -t UTF-8 FILE)"),
    (b"\xfe\xff", "is UTF-16 text: telemetry files are UTF-8 (iconv -f UTF-16 -t UTF-8 FILE)"),
)


def check_telemetry_file(path: Path) -> None:
    """ConfigError naming the file and the reason unless ``path`` is a readable telemetry file: a
    command checks before it writes anything (``analyze`` replaces its earlier results)."""
    if not path.exists():
        raise ConfigError(f"{path}: telemetry file not found")
    if not path.is_file():
        raise ConfigError(
            f"{path}: not a regular file (a pipe or a device cannot be read twice and mapped): "
            "write the stream to a file first"
        )
    try:
        with path.open("rb") as handle:
            start = handle.read(4)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the telemetry file ({exc.strerror or exc})") from None
    for magic, reason in _NOT_TELEMETRY:
        if start.startswith(magic):
            raise ConfigError(f"{path}: {reason}")


def read_records(path: Path) -> Iterator[FileRecord]:
    """The records of the telemetry file at ``path``, in order; ConfigError if it cannot be one
    (:func:`check_telemetry_file`)."""
    with open_records(path) as records:
        yield from records


@contextmanager
def open_records(path: Path) -> Iterator[TelemetryRecords]:
    """:func:`read_records` for a caller that may read on inside a frame that failed to decode
    (:meth:`TelemetryRecords.read_on_within`)."""
    check_telemetry_file(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the telemetry file ({exc.strerror or exc})") from None
    with handle:
        try:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            yield TelemetryRecords(b"")
            return
        with data:
            yield TelemetryRecords(data)


class TelemetryRecords:
    """The records of a file's bytes, in order (iterated once)."""

    def __init__(self, data: mmap.mmap | bytes) -> None:
        self._data = data
        self._size = len(data)
        # A UTF-8 byte-order mark ("UTF-8 with BOM" editors write one) is skipped, as RFC 8259
        # allows: read as part of the first record, it made a valid line invalid JSON.
        self._at = len(codecs.BOM_UTF8) if data[: len(codecs.BOM_UTF8)] == codecs.BOM_UTF8 else 0

    def __iter__(self) -> Iterator[FileRecord]:
        data, size = self._data, self._size
        number = 0
        while self._at < size:
            at = self._at
            number += 1
            if data[at : at + 4] == FRAME_MAGIC:
                try:
                    end = at + frame_size(data, at)
                except FrameError as exc:
                    kept = data[at : min(size, at + _UNREADABLE_KEPT)]
                    yield FileRecord(number, at, kept, unreadable=exc, rest_bytes=size - at)
                    return
                self._at = end + 1 if data[end : end + 1] == b"\n" else end
                # A truncated last frame is passed on as it is: decoding names what is missing.
                yield FileRecord(number, at, data[at : min(end, size)])
                continue
            newline = data.find(b"\n", at)
            end = size if newline < 0 else newline
            self._at = end + 1
            line = data[at:end].rstrip(b"\r\n")
            if line.strip():
                yield FileRecord(number, at, line)

    def read_on_within(self, frame: FileRecord) -> int | None:
        """``frame`` (the record just read) failed to decode: where a whole record (a JSON object
        on its line, or a frame whose size can be read) starts inside it after its prefix and
        header, as a frame cut short leaves the next records there, reading goes on from there and
        that place's offset within the frame is returned; None (nothing changes) when none does."""
        (header_len,) = struct.unpack_from("<I", frame.raw, 4)
        first, stop = frame.offset + 8 + header_len, frame.offset + len(frame.raw)
        candidates = [self._next(b"\n{", first, stop, 1), self._next(FRAME_MAGIC, first, stop, 0)]
        while any(c is not None for c in candidates):
            start = min(c for c in candidates if c is not None)
            if self._whole_record_at(start):
                self._at = start
                return start - frame.offset
            if candidates[0] == start:
                candidates[0] = self._next(b"\n{", start + 1, stop, 1)
            if candidates[1] == start:
                candidates[1] = self._next(FRAME_MAGIC, start + 1, stop, 0)
        return None

    def _next(self, marker: bytes, start: int, stop: int, skip: int) -> int | None:
        """Where a record would start at the next ``marker`` in [start, stop) (``skip``: the bytes
        of the marker before it, the newline)."""
        found = self._data.find(marker, start - skip, stop)
        return None if found < 0 else found + skip

    def _whole_record_at(self, start: int) -> bool:
        data = self._data
        if data[start : start + 4] == FRAME_MAGIC:
            try:
                return start + frame_size(data, start) <= self._size
            except FrameError:
                return False
        newline = data.find(b"\n", start)
        line = data[start : self._size if newline < 0 else newline]
        try:
            return isinstance(orjson.loads(line), dict)
        except orjson.JSONDecodeError:
            return False
