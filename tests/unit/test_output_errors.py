"""A file a command writes that cannot be written (here ``/dev/full``: every write fails with
ENOSPC, as on a full disk) is one ``linepulse: error:`` line naming the option and the file, exit 2,
not an OSError traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.cli import main
from service.output_file import OutputFile

FULL = Path("/dev/full")
pytestmark = pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full")
NO_SPACE = "cannot write (No space left on device)"


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return err


def test_simulate_to_a_full_device(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--out", str(FULL), "--duration", "1m", "--as-fast-as-possible"]) == 2
    assert f"linepulse: error: --out {FULL}: {NO_SPACE}" in _error(capsys)


def test_simulate_ground_truth_to_a_full_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "simulate",
        "--out",
        str(tmp_path / "t.jsonl"),
        "--truth",
        str(FULL),
        "--duration",
        "1m",
        "--as-fast-as-possible",
    ]
    assert main([*args, "--random-faults", "3"]) == 2
    assert f"linepulse: error: --truth {FULL}: {NO_SPACE}" in _error(capsys)


def test_simulate_to_a_missing_directory_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "missing" / "t.jsonl"
    assert main(["simulate", "--out", str(target), "--duration", "1m", "--as-fast-as-possible"]) == 2
    assert f"--out {target}: cannot write (No such file or directory)" in _error(capsys)


@pytest.mark.parametrize("name", ["kpis.jsonl", "dead_letters.jsonl", "capability.json"])
def test_analyze_output_on_a_full_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    telemetry = tmp_path / "t.jsonl"
    assert main(["simulate", "--out", str(telemetry), "--duration", "30m", "--as-fast-as-possible"]) == 0
    with telemetry.open("ab") as out:
        out.write(b'{"not": "telemetry"}\n')  # a dead letter, so dead_letters.jsonl is written
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    os.symlink(FULL, out_dir / name)
    capsys.readouterr()
    assert main(["analyze", str(telemetry), "--out", str(out_dir)]) == 2
    assert f"linepulse: error: --out {out_dir / name}: {NO_SPACE}" in _error(capsys)


def test_schema_output_on_a_full_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.symlink(FULL, tmp_path / "kpi.v1.json")
    assert main(["schema", "--out", str(tmp_path)]) == 2
    assert f"linepulse: error: --out {tmp_path / 'kpi.v1.json'}: {NO_SPACE}" in _error(capsys)


def test_a_closed_stdout_is_still_a_broken_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI stops quietly (exit 141) on a reader that went away; that must not become an error line.
    class Gone:
        def write(self, data: bytes) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    class Stdout:
        buffer = Gone()

    monkeypatch.setattr("sys.stdout", Stdout())
    with pytest.raises(BrokenPipeError):
        OutputFile("-", "--out").write(b"x\n")


@pytest.mark.parametrize("command", ["schema", "analyze"])
def test_a_result_printed_to_a_full_device(tmp_path: Path, command: str) -> None:
    # The schema list and analyze's summary go to standard output: a shell's `> /dev/full`.
    telemetry = tmp_path / "t.jsonl"
    telemetry.write_text("")
    argv = (
        ["schema", "--out", str(tmp_path / "s")]
        if command == "schema"
        else [
            "analyze",
            str(telemetry),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    with FULL.open("wb") as full:
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", *argv], stdout=full, stderr=subprocess.PIPE, check=False
        )
    err = done.stderr.decode()
    assert done.returncode == 2 and "Traceback" not in err, err
    assert f"to standard output: {NO_SPACE}" in err, err
