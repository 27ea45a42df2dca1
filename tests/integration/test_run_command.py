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


def test_run_shows_oee_per_machine_and_ctrl_c_leaves_nothing_behind(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "LINEPULSE_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "run.log").open("wb")
    started = time.monotonic()
    # Its own session, like a terminal's foreground job: Ctrl-C goes to the whole group.
    run = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "run", "--web-port", str(port), "--no-view"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: b"linepulse is up" in (tmp_path / "run.log").read_bytes(), 90, "'linepulse is up'")
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
        try:
            code = run.wait(timeout=60)
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
            log.close()
    assert code == 0, (tmp_path / "run.log").read_text()[-3000:]
    time.sleep(0.5)
    left = sorted(pid for pid in family if _alive(pid))
    assert not left, f"processes left behind after Ctrl-C: {left}"
    assert up_after < 60 + 30, f"up after {up_after:.0f} s"
