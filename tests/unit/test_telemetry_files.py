"""Telemetry files with binary frames: read whole whatever their bytes, and analysed like their JSON."""

from __future__ import annotations

import base64
import os
import struct
import threading
from pathlib import Path

import numpy as np
import orjson
import pytest

from service.cli import main
from service.telemetry_file import read_records
from streams.exceptions import FrameError
from streams.frames import Frame, SignalBlock, encode_frame, frame_size
from tests.frame_records import as_frame
from tests.unit.test_processing import simulated


def _with_frames(values: list[bytes]) -> list[bytes]:
    return [as_frame(v) if b'"kind":"samples"' in v else v for v in values]


def _file(records: list[bytes]) -> bytes:
    """JSON records each on its line, frames bare (the reader also takes them followed by a newline)."""
    return b"".join(r if r.startswith(b"LPF1") else r + b"\n" for r in records)


def _frame_with_newlines() -> bytes:
    # 10.0 is 0x4024000000000000 and 0x0a is a newline: the columns hold newline bytes.
    ts = 1_795_392_000_000 + np.arange(4, dtype=np.int64) * 10
    block = SignalBlock("vibration", None, ts, np.array([10.0, 10.0, 2.5, 10.0]))
    frame = encode_frame(Frame("demo", "p1", "L1", "M01", int(ts[-1]), None, (block,)))
    assert b"\n" in frame
    return frame


def test_frame_size_is_the_encoded_length_and_names_what_hides_it() -> None:
    frame = _frame_with_newlines()
    assert frame_size(frame) == len(frame)
    assert frame_size(b"{}\n" + frame, 3) == len(frame)
    header_len = struct.unpack_from("<I", frame, 4)[0]
    with pytest.raises(FrameError) as error:
        frame_size(b"LPF2" + frame[4:])
    assert error.value.field == "magic"
    with pytest.raises(FrameError) as error:
        frame_size(frame[:4] + struct.pack("<I", 12) + frame[8:])
    assert error.value.field == "header_length"
    with pytest.raises(FrameError) as error:
        frame_size(frame[:8] + b"{" * header_len + frame[8 + header_len :])
    assert error.value.field == "header"
    broken = frame[:8] + frame[8 : 8 + header_len].replace(b'"n":4', b'"n":0') + frame[8 + header_len :]
    with pytest.raises(FrameError) as error:
        frame_size(broken)
    assert error.value.field == "signals.0.n"


def test_a_file_of_lines_and_frames_gives_each_record_whole(tmp_path: Path) -> None:
    frame = _frame_with_newlines()
    line = b'{"v":1}'
    # A frame bare, one with its newline, blank and CRLF lines, a frame last without a newline.
    content = frame + frame + b"\n" + line + b"\r\n\n" + frame + b"\n" + line + b"\n" + frame
    source = tmp_path / "t.bin"
    source.write_bytes(content)
    got = [(r.number, r.offset, r.raw) for r in read_records(source)]
    size = len(frame)
    assert got == [
        (1, 0, frame),
        (2, size, frame),
        (3, 2 * size + 1, line),
        (5, 2 * size + 1 + len(line) + 3, frame),
        (6, 3 * size + len(line) + 5, line),
        (7, 3 * size + 2 * len(line) + 6, frame),
    ]
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert list(read_records(empty)) == []


def _analyze(source: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["analyze", str(source), "--out", str(out)]) == 0
    summary: dict[str, object] = orjson.loads(capsys.readouterr().out)
    return summary


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def test_analyze_replays_frames_as_it_replays_their_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values = simulated(3000, seed=4)
    frames = _with_frames(values)
    assert sum(v.startswith(b"LPF1") for v in frames) > 300
    assert sum(b"\n" in v for v in frames) > 100  # the reviewer's case: newlines inside the columns
    as_json, as_frames = tmp_path / "t.jsonl", tmp_path / "t.lpf"
    as_json.write_bytes(b"\n".join(values) + b"\n")
    as_frames.write_bytes(_file(frames))
    by_json = _analyze(as_json, tmp_path / "json", capsys)
    by_frames = _analyze(as_frames, tmp_path / "frames", capsys)
    assert by_frames["dead_letters"] == 0 and by_frames["applied"] == 3000
    assert by_frames["readings"] == by_json["readings"] and by_frames["machines"] == by_json["machines"]
    for name in ("kpis.jsonl", "alerts.jsonl", "line_kpis.jsonl"):
        assert _lines(tmp_path / "frames" / name) == _lines(tmp_path / "json" / name), name
    assert by_json["kpis"] == len(_lines(tmp_path / "json" / "kpis.jsonl"))  # open windows counted too


def test_a_frame_of_unreadable_size_ends_the_file_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = _with_frames(simulated(600, seed=4))
    cut = next(i for i, v in enumerate(frames) if v.startswith(b"LPF1") and i > 100)
    damaged = frames[cut][:8] + b"[" + frames[cut][9:]  # the header is no longer JSON
    content = _file(frames[:cut]) + damaged + _file(frames[cut + 1 :])
    source = tmp_path / "t.lpf"
    source.write_bytes(content)
    summary = _analyze(source, tmp_path / "out", capsys)
    assert summary["applied"] == cut and summary["dead_letters"] == 1
    offset = len(_file(frames[:cut]))
    assert summary["unread_bytes"] == len(content) - offset
    (entry,) = [orjson.loads(line) for line in _lines(tmp_path / "out" / "dead_letters.jsonl")]
    assert (entry["line"], entry["offset"], entry["code"], entry["field"]) == (
        cut + 1,
        offset,
        "invalid_frame",
        "header",
    )
    assert f"{len(content) - offset} bytes from offset {offset}" in entry["reason"]


def test_analyze_refuses_an_output_that_would_destroy_its_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values = b"\n".join(simulated(50)) + b"\n"
    source = tmp_path / "alerts.jsonl"
    source.write_bytes(values)
    assert main(["analyze", str(source), "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "alerts.jsonl" in error and "--out" in error and "Traceback" not in error
    assert source.read_bytes() == values
    assert main(["analyze", str(source), "--out", str(source)]) == 2
    error = capsys.readouterr().err
    assert "not a directory" in error and "Traceback" not in error


def test_schema_names_an_out_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    taken = tmp_path / "schemas"
    taken.write_bytes(b"")
    assert main(["schema", "--out", str(taken)]) == 2
    error = capsys.readouterr().err
    assert "--out" in error and "not a directory" in error and "Traceback" not in error


def test_a_byte_order_mark_at_the_start_is_skipped_and_named_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ "UTF-8 with BOM" (Windows tools): the mark made the first record, a machine's start, a dead letter."""
    values = simulated(200)
    plain, marked = tmp_path / "plain.jsonl", tmp_path / "marked.jsonl"
    plain.write_bytes(b"\n".join(values) + b"\n")
    # The start of the file and, as a concatenated file has it, the start of a line in the middle.
    marked.write_bytes(
        b"\xef\xbb\xbf" + b"\n".join([*values[:100], b"\xef\xbb\xbf" + values[100], *values[101:]])
    )
    (first,) = [r for r in read_records(marked) if r.number == 1]
    assert (first.offset, first.raw) == (3, values[0])
    for source, out in ((plain, "a"), (marked, "b")):
        assert main(["analyze", str(source), "--out", str(tmp_path / out)]) == 0
    capsys.readouterr()
    dead = orjson.loads((tmp_path / "b" / "dead_letters.jsonl").read_bytes())
    assert dead["line"] == 101 and dead["code"] == "invalid_json"
    assert dead["reason"].endswith("(it starts with a UTF-8 byte-order mark: remove it)")
    assert (tmp_path / "a" / "kpis.jsonl").read_bytes().count(b"\n") > 0


@pytest.mark.parametrize(
    ("start", "named"),
    [
        (b"\x1f\x8b\x08\x00", "is gzip-compressed: decompress it first"),
        (b"\x28\xb5\x2f\xfd", "is zstd-compressed"),
        ("{}\n".encode("utf-16"), "is UTF-16 text: telemetry files are UTF-8"),
    ],
)
def test_a_file_that_is_not_telemetry_is_named_and_the_earlier_results_stay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], start: bytes, named: str
) -> None:
    """Read as lines, every record was a dead letter and analyze exited 0 with empty results."""
    good, out = tmp_path / "good.jsonl", tmp_path / "out"
    good.write_bytes(b"\n".join(simulated(100)) + b"\n")
    assert main(["analyze", str(good), "--out", str(out)]) == 0
    earlier = {path.name: path.read_bytes() for path in out.iterdir()}
    assert "summary.json" in earlier and orjson.loads(earlier["summary.json"])["applied"] == 100
    capsys.readouterr()
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(start + b"rest of the file")
    assert main(["analyze", str(bad), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert f"{bad}: {named}" in error and "Traceback" not in error
    assert {path.name: path.read_bytes() for path in out.iterdir()} == earlier  # nothing touched


def test_a_pipe_is_named_not_called_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "stream"
    os.mkfifo(fifo)
    assert main(["analyze", str(fifo), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "not a regular file" in error and "write the stream to a file first" in error
    assert not (tmp_path / "out").exists()


def test_a_new_run_removes_the_earlier_results_first_and_writes_its_summary_last(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An interrupted run left its partial kpis.jsonl next to an earlier run's capability and signals."""
    source, out = tmp_path / "telemetry.jsonl", tmp_path / "out"
    source.write_bytes(b"\n".join(simulated(300)) + b"\n")
    out.mkdir()
    for name in ("signals.json", "capability.json", "summary.json", "line_kpis.jsonl"):
        (out / name).write_text("from an earlier run")
    (out / "notes.txt").write_text("the user's own file")
    assert main(["analyze", str(source), "--out", str(out)]) == 0
    printed = orjson.loads(capsys.readouterr().out)
    assert orjson.loads((out / "summary.json").read_bytes()) == printed
    for name in ("signals.json", "capability.json", "line_kpis.jsonl"):
        assert (out / name).read_text() != "from an earlier run"
    assert (out / "notes.txt").read_text() == "the user's own file"  # only analyze's own files


def test_a_linked_result_of_an_earlier_run_is_emptied_before_a_run_that_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A link among the results is kept and written through; what it points to held the earlier
    run's summary after a run that failed half-way, so the directory looked finished."""
    source, out, kept = tmp_path / "telemetry.jsonl", tmp_path / "out", tmp_path / "kept"
    source.write_bytes(b"\n".join(simulated(300)) + b"\n")
    out.mkdir()
    kept.mkdir()
    (kept / "summary.json").write_text("from an earlier run")
    (out / "summary.json").symlink_to(kept / "summary.json")
    (out / "kpis.jsonl").symlink_to("/dev/full")  # every write fails: no space left
    assert main(["analyze", str(source), "--out", str(out)]) != 0
    assert f"{out / 'kpis.jsonl'}: cannot write" in capsys.readouterr().err
    assert (out / "summary.json").is_symlink() and (kept / "summary.json").read_bytes() == b""
    (out / "kpis.jsonl").unlink()
    (out / "alerts.jsonl").unlink(missing_ok=True)
    (out / "alerts.jsonl").symlink_to(source)  # the input itself: refused, nothing emptied
    assert main(["analyze", str(source), "--out", str(out)]) == 2
    assert "is one of the files analyze writes to --out" in capsys.readouterr().err
    assert source.stat().st_size > 0
    (out / "alerts.jsonl").unlink()
    assert main(["analyze", str(source), "--out", str(out)]) == 0
    printed = orjson.loads(capsys.readouterr().out)
    assert (out / "summary.json").is_symlink() and orjson.loads(
        (kept / "summary.json").read_bytes()
    ) == printed


def test_a_result_linked_to_a_pipe_streams_to_its_reader(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only a regular file behind a link is emptied first: opening a pipe to empty it ended its
    reader's input, and the run then blocked for ever on its real write."""
    source, out, fifo = tmp_path / "telemetry.jsonl", tmp_path / "out", tmp_path / "kpis.fifo"
    source.write_bytes(b"\n".join(simulated(300)) + b"\n")
    out.mkdir()
    os.mkfifo(fifo)
    (out / "kpis.jsonl").symlink_to(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    assert main(["analyze", str(source), "--out", str(out)]) == 0
    reader.join(timeout=30)
    assert not reader.is_alive()
    kpis = [orjson.loads(line) for line in received[0].splitlines()]
    assert kpis and all("machine" in record for record in kpis)
    capsys.readouterr()


@pytest.mark.parametrize("followed_by", ["line", "frame"])
def test_a_frame_cut_short_mid_file_is_its_own_dead_letter_and_the_records_after_it_are_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], followed_by: str
) -> None:
    """A gateway's write that crashed halfway through a frame: the frame's header still declares its
    whole size, which took the next records' bytes. Read on where the first whole one starts, the
    file gives what it gives without the cut frame; the dead letter holds the cut frame's own bytes."""
    records = _with_frames(simulated(600, seed=4))
    is_frame = [r.startswith(b"LPF1") for r in records]
    cut = next(
        i for i in range(100, len(records)) if is_frame[i] and is_frame[i + 1] == (followed_by == "frame")
    )
    half = records[cut][: len(records[cut]) // 2]
    source, without = tmp_path / "cut.lpf", tmp_path / "without.lpf"
    source.write_bytes(_file(records[:cut]) + half + b"\n" + _file(records[cut + 1 :]))
    without.write_bytes(_file(records[:cut] + records[cut + 1 :]))
    summary = _analyze(source, tmp_path / "out", capsys)
    reference = _analyze(without, tmp_path / "ref", capsys)
    assert summary["applied"] == reference["applied"] == len(records) - 1
    assert summary["dead_letters"] == 1 and "unread_bytes" not in summary
    for name in ("kpis.jsonl", "alerts.jsonl", "line_kpis.jsonl"):
        assert _lines(tmp_path / "out" / name) == _lines(tmp_path / "ref" / name), name
    (entry,) = [orjson.loads(line) for line in _lines(tmp_path / "out" / "dead_letters.jsonl")]
    assert (entry["line"], entry["offset"], entry["code"]) == (
        cut + 1,
        len(_file(records[:cut])),
        "invalid_frame",
    )
    assert base64.b64decode(entry["raw_base64"]) == half
    assert entry["reason"].startswith(
        f"the frame was cut short: its header declares {len(records[cut])} bytes"
    )
