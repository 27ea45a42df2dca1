"""The ``linepulse`` executable as a shell sees it: exit codes and stderr when the world misbehaves.

Run as child processes, because what is tested is what reaches the terminal: no traceback when no
broker answers, and a quiet stop when the reader of stdout goes away (``... | head -1``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

_EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell shows for a tool stopped by a closed pipe


def _linepulse(*args: str) -> list[str]:
    return [sys.executable, "-m", "service.cli", *args]


def _closed_port() -> str:
    """A local address where nothing listens (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def test_commands_needing_topics_report_an_unreachable_broker_in_one_line(tmp_path: Path) -> None:
    servers = _closed_port()
    env = {**os.environ, "LINEPULSE_DATA_DIR": str(tmp_path / "data")}
    env.pop("LINEPULSE_BOOTSTRAP_SERVERS", None)
    commands = {
        "worker": ["worker", "--bootstrap-servers", servers, "--web-port", "0"],
        "baseline reset": ["baseline", "reset", "--machine", "M01", "--bootstrap-servers", servers],
        "run": [
            "run",
            "--bootstrap-servers",
            servers,
            "--no-view",
            "--web-port",
            _closed_port().split(":")[1],
        ],
    }
    # In parallel: each waits out kafka-python's 30 s bootstrap timeout.
    children = {
        name: subprocess.Popen(
            _linepulse(*argv), env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for name, argv in commands.items()
    }
    for name, child in children.items():
        _, err_bytes = child.communicate(timeout=120)
        err = err_bytes.decode()
        lines = err.strip().splitlines()
        assert child.returncode == 2, (name, err)
        assert len(lines) == 1 and lines[0].startswith("linepulse: error: "), (name, err)
        assert servers in err and "bootstrap" in err.lower(), (name, err)


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--start", "2026-11-25T00:00:00Z", "--duration", "1h", "--as-fast-as-possible"],
        ["schema", "--out", "schema"],
    ],
    ids=["simulate", "schema"],
)
def test_a_closed_stdout_stops_quietly(argv: list[str], tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write, as `| head -0` would leave it
    try:
        child = subprocess.run(
            _linepulse(*argv),
            cwd=tmp_path,
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    err = child.stderr.decode()
    assert child.returncode == _EXIT_BROKEN_PIPE, err
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err


def test_a_web_port_another_program_listens_on_stops_run_and_worker_before_they_start(tmp_path: Path) -> None:
    """``run`` read the other program's /ready as its worker's, said "up" and showed its pages; the
    worker died after its start with aiohttp's traceback. Now both refuse at once, naming the option."""
    env = {**os.environ, "LINEPULSE_DATA_DIR": str(tmp_path / "data")}
    env.pop("LINEPULSE_BOOTSTRAP_SERVERS", None)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = str(other.getsockname()[1])
        for argv in (
            ["run", "--no-view", "--web-port", port],
            ["worker", "--bootstrap-servers", _closed_port(), "--web-port", port],
        ):
            child = subprocess.run(
                _linepulse(*argv), env=env, cwd=tmp_path, capture_output=True, timeout=120, check=False
            )
            err = child.stderr.decode()
            assert child.returncode == 2, (argv, err)
            assert err.count("\n") == 1 and err.startswith("linepulse: error: --web-port"), (argv, err)
            assert f"127.0.0.1:{port}" in err and "in use" in err, (argv, err)
            assert b"linepulse is up" not in child.stdout and b"Tansu" not in child.stdout, child.stdout
