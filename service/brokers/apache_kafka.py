"""Apache Kafka in KRaft mode on 127.0.0.1: one node, or three for replication and broker-kill tests.

Every node is a combined broker+controller JVM started from the jars cached by :func:`fetch_jars`.
"""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from service.brokers.exceptions import BrokerError, BrokerStartError
from service.brokers.jars import KAFKA_VERSION, default_cache_dir, fetch_jars, libs_dir, require_tool
from service.brokers.kraft_config import (
    NodePorts,
    log4j2_properties,
    new_cluster_id,
    server_properties,
)
from service.brokers.readiness import free_port, wait_until_ready
from service.processes import spawn, stop_process, tail

__all__ = ["KAFKA_VERSION", "KafkaCluster", "default_cache_dir", "fetch_jars", "libs_dir"]

_LAYOUT_FILE = "cluster.json"
_FORMAT_TIMEOUT_S = 120.0


@dataclass
class _Node:
    node_id: int
    ports: NodePorts
    directory: Path
    proc: subprocess.Popen[bytes] | None = field(default=None)

    @property
    def properties(self) -> Path:
        return self.directory / "server.properties"

    @property
    def console_log(self) -> Path:
        return self.directory / "console.log"

    @property
    def server_log(self) -> Path:
        return self.directory / "server.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports.broker}"


def _unique_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


class KafkaCluster:
    """A local Apache Kafka cluster of 1 or 3 KRaft nodes; use as a context manager.

    With ``base_dir`` the cluster id, ports and data survive a restart of the cluster; without it a
    temporary directory is used and removed on ``stop()``.
    """

    def __init__(
        self,
        brokers: int = 1,
        *,
        base_dir: Path | None = None,
        libs: Path | None = None,
        heap: str = "512m",
        startup_timeout_s: float = 90.0,
        stop_grace_s: float = 15.0,
    ) -> None:
        if brokers not in (1, 3):
            raise ValueError(f"brokers must be 1 or 3, not {brokers}")
        self._size = brokers
        self._requested_dir = base_dir
        self._libs = libs
        self._heap = heap
        self._startup_timeout_s = startup_timeout_s
        self._stop_grace_s = stop_grace_s
        self._base_dir: Path | None = None
        self._owns_dir = False
        self._nodes: list[_Node] = []
        self._java = ""

    @property
    def size(self) -> int:
        return self._size

    @property
    def bootstrap_servers(self) -> str:
        if not self._nodes:
            raise BrokerError("Kafka cluster is not running")
        return ",".join(node.bootstrap for node in self._nodes)

    def log_tail(self, index: int, max_lines: int = 40) -> str:
        node = self._node(index)
        return (
            f"--- {node.server_log} ---\n{tail(node.server_log, max_lines)}\n"
            f"--- {node.console_log} ---\n{tail(node.console_log, max_lines)}"
        )

    def start(self) -> Self:
        if self._nodes:
            raise BrokerError("Kafka cluster already started")
        self._java = require_tool("java")
        self._libs = self._libs or fetch_jars()
        if self._requested_dir is None:
            self._base_dir = Path(tempfile.mkdtemp(prefix="linepulse-kafka-"))
            self._owns_dir = True
        else:
            self._base_dir = self._requested_dir
            self._base_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)
        try:
            cluster_id, ports = self._layout(self._base_dir)
            self._nodes = [_Node(i, p, self._base_dir / f"node-{i}") for i, p in enumerate(ports, start=1)]
            self._format(cluster_id, ports)
            for node in self._nodes:
                self._launch(node)
            wait_until_ready(
                self.bootstrap_servers,
                self._startup_timeout_s,
                expected_brokers=self._size,
                processes=[n.proc for n in self._nodes if n.proc is not None],
                log_paths=[p for n in self._nodes for p in (n.server_log, n.console_log)],
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        atexit.unregister(self.stop)
        running = [node for node in self._nodes if node.proc is not None]
        # Signal every node first: stopping them one by one would make each wait on a shrinking quorum.
        for node in running:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        deadline = time.monotonic() + self._stop_grace_s
        for node in running:
            if node.proc is not None:
                stop_process(node.proc, max(0.0, deadline - time.monotonic()))
                node.proc = None
        self._nodes = []
        if self._owns_dir and self._base_dir is not None:
            shutil.rmtree(self._base_dir, ignore_errors=True)
            self._owns_dir = False

    def kill_broker(self, index: int) -> None:
        """SIGKILL node ``index`` (0-based), as a crash would."""
        node = self._node(index)
        if node.proc is None:
            raise BrokerError(f"node {index} is not running")
        node.proc.kill()
        node.proc.wait()
        node.proc = None

    def start_broker(self, index: int) -> None:
        """Restart a killed node on its old ports and data, and wait until the cluster sees it again."""
        node = self._node(index)
        if node.proc is not None:
            raise BrokerError(f"node {index} is already running")
        self._launch(node)
        assert node.proc is not None
        wait_until_ready(
            node.bootstrap,
            self._startup_timeout_s,
            expected_brokers=self._size,
            processes=[node.proc],
            log_paths=[node.server_log, node.console_log],
        )

    def _node(self, index: int) -> _Node:
        if not self._nodes:
            raise BrokerError("Kafka cluster is not running")
        if not 0 <= index < len(self._nodes):
            raise IndexError(f"node index {index} out of range 0..{len(self._nodes) - 1}")
        return self._nodes[index]

    def _layout(self, base_dir: Path) -> tuple[str, list[NodePorts]]:
        """Cluster id and ports: reused from ``base_dir`` if it already holds this cluster, else new."""
        layout_file = base_dir / _LAYOUT_FILE
        if layout_file.is_file():
            saved = json.loads(layout_file.read_text(encoding="utf-8"))
            if len(saved["nodes"]) != self._size:
                raise BrokerStartError(
                    f"{base_dir} holds a {len(saved['nodes'])}-node cluster, not {self._size}; "
                    "use another directory"
                )
            return saved["cluster_id"], [NodePorts(**n) for n in saved["nodes"]]
        numbers = _unique_ports(2 * self._size)
        ports = [NodePorts(broker=numbers[2 * i], controller=numbers[2 * i + 1]) for i in range(self._size)]
        cluster_id = new_cluster_id()
        layout = {
            "cluster_id": cluster_id,
            "nodes": [{"broker": p.broker, "controller": p.controller} for p in ports],
        }
        layout_file.write_text(json.dumps(layout, indent=2) + "\n", encoding="utf-8")
        return cluster_id, ports

    def _jvm(self, node: _Node, heap: str | None) -> list[str]:
        heap_flags = [f"-Xmx{heap}"] if heap else []
        return [
            self._java,
            *heap_flags,
            "-Djava.awt.headless=true",
            # A broker out of heap should die (and show in the log), not limp on and stall a test.
            "-XX:+ExitOnOutOfMemoryError",
            f"-Dlog4j2.configurationFile={node.directory / 'log4j2.properties'}",
            "-cp",
            f"{self._libs}/*",
        ]

    def _format(self, cluster_id: str, ports: list[NodePorts]) -> None:
        """Write configs, and format every node's storage that is not formatted yet (in parallel)."""
        pending: list[tuple[_Node, subprocess.Popen[bytes]]] = []
        for node in self._nodes:
            data_dir = node.directory / "data"
            node.directory.mkdir(parents=True, exist_ok=True)
            node.properties.write_text(server_properties(node.node_id, ports, data_dir), encoding="utf-8")
            (node.directory / "log4j2.properties").write_text(
                log4j2_properties(node.server_log), encoding="utf-8"
            )
            if (data_dir / "meta.properties").is_file():
                continue
            argv = [
                *self._jvm(node, None),
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(node.properties),
            ]
            pending.append((node, spawn(argv, node.directory / "format.log", cwd=node.directory)))
        for node, proc in pending:
            try:
                code = proc.wait(timeout=_FORMAT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            if code != 0:
                log = tail(node.directory / "format.log")
                raise BrokerStartError(f"formatting node {node.node_id} failed (exit {code}):\n{log}")

    def _launch(self, node: _Node) -> None:
        argv = [*self._jvm(node, self._heap), "kafka.Kafka", str(node.properties)]
        node.proc = spawn(argv, node.console_log, cwd=node.directory)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
