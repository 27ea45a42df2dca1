"""``linepulse run`` as a new user runs it: up quickly, OEE per demo machine on /metrics, Ctrl-C cleans up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from service.brokers.readiness import free_port
from service.plant_file import load_demo_plant
from tests.integration.harness import wait_for


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def _start_run(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LINEPULSE_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    with (tmp_path / "run.log").open("wb") as log:
        # Its own session, like a terminal's foreground job: Ctrl-C goes to the whole group.
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", "run", "--web-port", str(port), "--no-view"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_up(tmp_path: Path) -> None:
    wait_for(lambda: b"linepulse is up" in (tmp_path / "run.log").read_bytes(), 90, "'linepulse is up'")


def _wait_stopped(run: subprocess.Popen[bytes]) -> int:
    try:
        return run.wait(timeout=90)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)


def _assert_stopped_in_order(tmp_path: Path, code: int, family: set[int]) -> None:
    """Exit 0, the worker stopped cleanly before the broker (so it could commit), nothing left."""
    output = (tmp_path / "run.log").read_text()
    # Right away: a child still stopping after run returned is the defect, not a slow reaper.
    left = sorted(pid for pid in family if _alive(pid))
    assert code == 0, output[-3000:]
    assert not left, f"processes left behind after Ctrl-C: {left}"
    worker_log = (tmp_path / "data" / "logs" / "worker.log").read_text()
    # The broker went away under the worker: it could not commit, and exited 70 at its stop deadline.
    assert "Unable connect" not in worker_log and "still stopping" not in worker_log, worker_log[-3000:]
    steps = ["simulator stopped (exit 0)", "worker stopped (exit 0)", "embedded broker stopped"]
    assert all(step in output for step in steps), output[-3000:]
    assert [output.index(step) for step in steps] == sorted(output.index(step) for step in steps), output


def test_run_shows_oee_per_machine_and_ctrl_c_leaves_nothing_behind(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    run = _start_run(tmp_path, port)
    try:
        _wait_up(tmp_path)
        up_after = time.monotonic() - started
        output = (tmp_path / "run.log").read_text()
        assert f"http://127.0.0.1:{port}/status" in output and "/metrics" in output
        # A new user's first screen has no broker warning about what the embedded Tansu cannot do.
        assert "did not describe" not in output, output
        machines = [machine.id for machine in load_demo_plant().machines]

        def every_machine_has_oee_a_p_q() -> bool:
            metrics = _get(f"http://127.0.0.1:{port}/metrics")
            return all(
                f'linepulse_{ratio}_ratio{{line="{m.line}",machine="{m.id}",site="{m.site}",'
                f'tenant="{m.tenant}",window="shift"}}' in metrics
                for m in load_demo_plant().machines
                for ratio in ("oee", "availability", "performance", "quality")
            )

        wait_for(every_machine_has_oee_a_p_q, 120, "OEE, A, P and Q of every demo machine on /metrics")
        assert "linepulse" in _get(f"http://127.0.0.1:{port}/status")
        api = _get(f"http://127.0.0.1:{port}/api/machines")
        assert all(f'"machine":"{machine}"' in api for machine in machines)
        family = _descendants(run.pid)
        assert len(family) >= 3, "broker, worker and simulator run as child processes"
    finally:
        os.killpg(run.pid, signal.SIGINT)
        code = _wait_stopped(run)
    _assert_stopped_in_order(tmp_path, code, family)
    assert up_after < 60 + 30, f"up after {up_after:.0f} s"


def test_a_second_ctrl_c_does_not_stop_the_broker_under_the_stopping_worker(tmp_path: Path) -> None:
    run = _start_run(tmp_path, free_port())
    try:
        _wait_up(tmp_path)
        family = _descendants(run.pid)
        os.killpg(run.pid, signal.SIGINT)
        # The second Ctrl-C once the first one's ordered stop is under way (the simulator stopping),
        # as an impatient user presses it.
        wait_for(lambda: b"stopping ..." in (tmp_path / "run.log").read_bytes(), 30, "'stopping ...'", 0.05)
        os.killpg(run.pid, signal.SIGINT)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGINT)
        code = _wait_stopped(run)
    _assert_stopped_in_order(tmp_path, code, family)
    assert "still stopping" in (tmp_path / "run.log").read_text()
