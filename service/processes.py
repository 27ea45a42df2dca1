"""Child processes that cannot outlive the Python process that started them (brokers, run's children).

A test run killed with SIGKILL (CI timeout, OOM killer) must not leave JVMs holding ports and
memory, so children ask the kernel for a signal when their parent dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = ["spawn", "stop_process", "tail"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    # Resolved before fork: the child should do as little as possible before exec.
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        # The parent may have died between fork and prctl; then nobody would ever signal us.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def spawn(
    argv: Sequence[str],
    log_path: Path,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout and stderr appended to ``log_path``.

    Note: the kernel sends the death signal when the *thread* that forked exits, so call this from
    a thread that lives as long as the broker should (the main thread in practice).
    """
    preexec = _die_with_parent(os.getpid()) if sys.platform.startswith("linux") else None
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=None if env is None else dict(env),
            # prctl must run in the child between fork and exec; there is no other hook for it. The
            # callback only makes a libc call, which is safe even if other threads exist.
            preexec_fn=preexec,  # noqa: PLW1509
            close_fds=True,
            # Own process group: a terminal's Ctrl-C reaches only the parent, which then stops
            # children in order (simulator, worker, broker) instead of the broker dying first.
            process_group=0,
        )


def stop_process(proc: subprocess.Popen[bytes], grace_s: float) -> int:
    """SIGTERM, then SIGKILL if the process is still alive after ``grace_s``; returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def tail(path: Path, max_lines: int = 40) -> str:
    """The last lines of a log file, or a note saying why there are none."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            data = f.read()
    except OSError as exc:
        return f"(no log at {path}: {exc.strerror})"
    lines = data.decode("utf-8", errors="replace").splitlines()[-max_lines:]
    return "\n".join(lines) if lines else f"({path} is empty)"
