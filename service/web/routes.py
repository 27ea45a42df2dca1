"""HTTP routes on the Faust web server.

``/api/machines`` returns the live machines this worker owns, each with its open alerts, its sensor
signals' statistics and its Cp/Cpk/Pp/Ppk per characteristic, product and shift; ``/api/capability``
returns only the latter, one row per machine, characteristic, product and shift. ``?tenant=ID``
limits either to one tenant (an unknown or malformed tenant, a repeated ``tenant`` or any other
parameter gets a 400 naming the parameter, not an empty or unfiltered success).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Set
from importlib import resources
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from models.machine_state import MachineState
from service.anomaly_view import anomaly_view
from service.capability_view import capability_by_shift_rows, capability_rows
from service.exposition import render
from service.metrics import TenantCollectors
from service.signal_view import signal_view
from service.web.bad_requests import install_bad_request_log
from service.web.staleness import Silence, silences
from streams.app import LinepulseStream
from streams.live import Counters

__all__ = ["machine_view", "register_routes", "tenant_param"]

_TENANT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def machine_view(
    stream: LinepulseStream, state: MachineState, silent: Silence, counters: Counters
) -> dict[str, Any]:
    """One machine for /api/machines; ``silent``: how long it has sent nothing
    (:mod:`service.web.staleness`: on its tenant's stream clock, so a replay is not all stale);
    ``counters``: its totals as /metrics' counters show them (:class:`streams.live.Counters`)."""
    calendar = stream.processor.engine.calendar_for(state)
    plant = stream.processor.plant
    spec = plant.machine(state.tenant, state.machine)
    windows = {
        record.window: record.model_dump(mode="json")
        for record in stream.processor.open_window_records(state)
    }
    return {
        "tenant": state.tenant,
        "site": state.site,
        "line": state.line,
        "machine": state.machine,
        "name": spec.name if spec is not None else None,
        "state": state.state,
        "reason": state.reason,
        "state_since": calendar.local_isoformat(state.state_since_ms) if state.state_since_ms else None,
        "last_seen": calendar.local_isoformat(state.last_seen_ms) if state.last_seen_ms else None,
        "silent_s": silent.silent_s,
        "received_ago_s": silent.received_ago_s,
        "stale": silent.stale,
        "totals": counters.totals.to_dict(),
        "windows": windows,
        "capability": capability_rows(stream.processor.engine, state),
        "capability_by_shift": capability_by_shift_rows(stream.processor.engine, state),
        "anomaly": anomaly_view(state, calendar),
        # readings: counters, as totals above (and /metrics); the statistics are the newest state's
        "signals": signal_view(state, calendar, counters.signal_readings),
        # `baseline reset --at` commands waiting for the machine's telemetry to reach their time:
        # shown, so that one sent with a wrong time is seen before it fires.
        "baseline_resets_waiting": [
            {
                "at": calendar.local_isoformat(reset.at_ms),
                "series": reset.series,
                "name": reset.name,
                "requested_by": reset.requested_by,
                "reason": reset.reason,
            }
            for reset in state.pending_resets
        ],
        "alerts": [
            {
                "id": alert.id,
                "kind": alert.kind,
                # what it is about; linepulse_active_alerts' subject leaves out a product
                "subject": alert.subject,
                "severity": alert.severity,
                "started_at": calendar.local_isoformat(alert.started_ms),
                "message": alert.message,
                "evidence": alert.evidence,
            }
            for alert in state.alerts.values()
        ],
    }


def tenant_param(query: Mapping[str, str], known_tenants: Set[str]) -> tuple[str | None, str | None]:
    """The ``tenant`` of an API request's query, or the error naming the parameter and the reason.

    Strict, because a lenient parser leaks: with the first of two ``tenant``s winning, a proxy that
    appends the caller's own tenant would be overridden by one the caller put first, and a misspelt
    ``Tenant`` that is ignored would answer with every tenant.
    """
    unknown = sorted(set(query) - {"tenant"})
    if unknown:
        return None, f"{unknown[0]}: unknown query parameter (the only one is tenant)"
    getall = getattr(query, "getall", None)  # aiohttp's query is a multidict: all values of a key
    given: list[str] = (
        list(getall("tenant", [])) if getall else ([query["tenant"]] if "tenant" in query else [])
    )
    if len(given) > 1:
        return None, f"tenant: given {len(given)} times; give it once"
    tenant = given[0] if given else None
    if tenant is not None and (not _TENANT.match(tenant) or tenant not in known_tenants):
        return None, "tenant: unknown tenant or not [A-Za-z0-9_.-]{1,64}"
    return tenant, None


def register_routes(stream: LinepulseStream, registry: CollectorRegistry) -> None:
    app = stream.app
    install_bad_request_log()
    known_tenants = {machine.tenant for machine in stream.processor.plant.machines}
    status_html = resources.files("service.web").joinpath("status.html").read_text(encoding="utf-8")

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # ?tenant=ID: that tenant's machine and line series only, judged as the API's query is, so
        # a proxy appending the caller's tenant cannot be talked into every tenant's series.
        tenant, error = tenant_param(request.query, known_tenants)
        if error is not None:
            return web.text(f"{error}\n", status=400)
        scraped: Any = registry
        if tenant is not None:
            scraped = TenantCollectors(stream.live, stream.processor.plant, stream.lines, tenant)
        return web.bytes(render(scraped), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        # Readiness is the worker's; the machine count is the caller's tenant's with ?tenant=ID,
        # judged as everywhere else (a count is still another tenant's business).
        tenant, error = tenant_param(request.query, known_tenants)
        if error is not None:
            return web.json({"error": error}, status=400)
        is_ready = stream.is_ready()
        machines = sum(1 for state in stream.live if tenant is None or state.tenant == tenant)
        return web.json({"ready": is_ready, "machines": machines}, status=200 if is_ready else 503)

    @app.page("/status")
    async def status(web: Any, request: Any) -> Any:
        return web.html(status_html)

    # Registered before Faust's own "/" (a bare {"status": "OK"}), so the worker's address opens
    # its live page; aiohttp serves the first resource that matches.
    @app.page("/")
    async def index(web: Any, request: Any) -> Any:
        # Kept: /?tenant=x is judged as /status?tenant=x is. Percent-encoded as it came: decoded, a
        # %0d%0a put a line break into the Location header (aiohttp refused to send it: no answer).
        query = request.rel_url.raw_query_string
        location = "/status" + (f"?{query}" if query else "")
        return web.text(f"See {location}\n", status=302, headers={"Location": location})

    @app.page("/api/capability")
    async def capability(web: Any, request: Any) -> Any:
        tenant, error = tenant_param(request.query, known_tenants)
        if error is not None:
            return web.json({"error": error}, status=400)
        states = [state for state in stream.live if tenant is None or state.tenant == tenant]
        engine = stream.processor.engine
        rows, by_shift = [], []
        for state in states:
            where = {"tenant": state.tenant, "site": state.site, "line": state.line, "machine": state.machine}
            rows += [{**where, **row} for row in capability_rows(engine, state)]
            by_shift += [{**where, **row} for row in capability_by_shift_rows(engine, state)]
        body = orjson.dumps({"ready": stream.is_ready(), "capability": rows, "capability_by_shift": by_shift})
        return web.bytes(body, content_type="application/json")

    @app.page("/api/machines")
    async def machines(web: Any, request: Any) -> Any:
        tenant, error = tenant_param(request.query, known_tenants)
        if error is not None:
            return web.json({"error": error}, status=400)
        shown = [state for state in stream.live if tenant is None or state.tenant == tenant]
        silent = silences(stream.live, shown, int(time.time() * 1000), stream.processor.plant.state_timeout_s)
        body = orjson.dumps(
            {
                "ready": stream.is_ready(),
                "oee_target": stream.processor.plant.alerts.oee_below,
                "machines": [
                    machine_view(stream, m, q, stream.live.counters(m.key))
                    for m, q in zip(shown, silent, strict=True)
                ],
            }
        )
        return web.bytes(body, content_type="application/json")
