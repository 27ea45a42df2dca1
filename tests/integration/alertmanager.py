"""A real Alertmanager (Debian's prometheus-alertmanager) with docker/alertmanager/alertmanager.yml.

The shipped config runs as it is except for two things a test must change: the receivers' placeholder
URLs point at a local webhook that records every notification, and the grouping timers are seconds
instead of minutes. Routes, grouping labels and inhibition rules are the shipped ones.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from service.brokers.readiness import free_port
from tests.integration.harness import server_process, tail
from tests.integration.observability import require_executable

__all__ = ["CONFIG", "AlertmanagerServer", "alertmanager_running"]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "docker" / "alertmanager" / "alertmanager.yml"
_FAST_TIMERS = {"group_wait": "2s", "group_interval": "2s", "repeat_interval": "1h"}


class _Webhook(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _WebhookHandler)
        self.notifications: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()


class _WebhookHandler(BaseHTTPRequestHandler):
    server: _Webhook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.notifications.append((self.path.strip("/"), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


class AlertmanagerServer:
    def __init__(self, base_url: str, webhook: _Webhook, log: Path) -> None:
        self.base_url = base_url
        self.webhook = webhook
        self.log = log

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}/api/v2/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read()!r}") from exc
        return json.loads(payload) if payload else None

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """What Prometheus sends: labels, annotations, and endsAt in the past for a resolved alert."""
        self._request("POST", "alerts", alerts)

    def alerts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request("GET", "alerts")
        return result

    def notifications(self) -> list[tuple[str, dict[str, Any]]]:
        """(receiver, webhook payload) of every notification sent so far."""
        with self.webhook.lock:
            return list(self.webhook.notifications)

    def log_tail(self) -> str:
        return tail(self.log)


def _test_config(webhook_url: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    for receiver in document["receivers"]:
        for webhook in receiver["webhook_configs"]:
            assert ".example.invalid/" in webhook["url"]  # the shipped placeholder, replaced here only
            webhook["url"] = f"{webhook_url}/{receiver['name']}"
    routes = [document["route"]]
    while routes:
        route = routes.pop()
        for timer, value in _FAST_TIMERS.items():
            if timer in route:
                route[timer] = value
        routes.extend(route.get("routes", []))
    document["route"].update(_FAST_TIMERS)
    return document


@contextmanager
def alertmanager_running(workdir: Path) -> Iterator[AlertmanagerServer]:
    binary = require_executable("prometheus-alertmanager")
    webhook = _Webhook()
    thread = threading.Thread(target=webhook.serve_forever, daemon=True)
    thread.start()
    config = workdir / "alertmanager.yml"
    host, webhook_port = webhook.server_address[:2]
    config.write_text(yaml.safe_dump(_test_config(f"http://{host!s}:{webhook_port}")), encoding="utf-8")
    port = free_port()
    log = workdir / "alertmanager.log"
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.path={workdir / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        # No cluster: a single instance, and no gossip port to collide with other tests.
        "--cluster.listen-address=",
        "--log.level=info",
    ]
    base_url = f"http://127.0.0.1:{port}"
    try:
        with server_process("alertmanager", argv, log, base_url):
            yield AlertmanagerServer(base_url, webhook, log)
    finally:
        webhook.shutdown()
        webhook.server_close()
