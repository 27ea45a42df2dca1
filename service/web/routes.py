"""HTTP routes on the Faust web server.

``/api/machines`` returns the live machines this worker owns; ``?tenant=ID`` limits it to one tenant
(and an unknown or malformed tenant gets a 400 naming the parameter, not an empty success).
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from models.machine import MachineState
from streams.app import LinepulseStream

__all__ = ["machine_view", "register_routes"]

_TENANT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def machine_view(stream: LinepulseStream, state: MachineState) -> dict[str, Any]:
    calendar = stream.processor.engine.calendar
    windows = {
        record.window: record.model_dump(mode="json")
        for record in stream.processor.open_window_records(state)
    }
    return {
        "tenant": state.tenant,
        "site": state.site,
        "line": state.line,
        "machine": state.machine,
        "state": state.state,
        "reason": state.reason,
        "state_since": calendar.local_isoformat(state.state_since_ms) if state.state_since_ms else None,
        "last_seen": calendar.local_isoformat(state.last_seen_ms) if state.last_seen_ms else None,
        "totals": state.totals.to_dict(),
        "windows": windows,
        "alerts": [
            {
                "id": alert.id,
                "kind": alert.kind,
                "severity": alert.severity,
                "started_at": calendar.local_isoformat(alert.started_ms),
                "message": alert.message,
                "evidence": alert.evidence,
            }
            for alert in state.alerts.values()
        ],
    }


def register_routes(stream: LinepulseStream, registry: CollectorRegistry) -> None:
    app = stream.app
    known_tenants = {machine.tenant for machine in stream.processor.plant.machines}
    status_html = resources.files("service.web").joinpath("status.html").read_text(encoding="utf-8")

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        is_ready = stream.is_ready()
        return web.json({"ready": is_ready, "machines": len(stream.live)}, status=200 if is_ready else 503)

    @app.page("/status")
    async def status(web: Any, request: Any) -> Any:
        return web.html(status_html)

    @app.page("/api/machines")
    async def machines(web: Any, request: Any) -> Any:
        tenant = request.query.get("tenant")
        if tenant is not None and (not _TENANT.match(tenant) or tenant not in known_tenants):
            return web.json({"error": "tenant: unknown tenant or not [A-Za-z0-9_.-]{1,64}"}, status=400)
        views = [
            machine_view(stream, state) for state in stream.live if tenant is None or state.tenant == tenant
        ]
        body = orjson.dumps({"ready": stream.is_ready(), "machines": views})
        return web.bytes(body, content_type="application/json")
