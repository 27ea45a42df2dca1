"""A real Prometheus server scrapes a real worker and evaluates linepulse's rules against it (Tansu).

Proves, end to end: /metrics is valid exposition Prometheus ingests; ``linepulse_oee_ratio`` has one
``window="day"`` series per demo machine with the expected labels; the rules file loads in a real
server, its recording rules produce series from real data, and an alert's expression matches real
label sets; every Grafana panel query is PromQL the server accepts; and the worker's own open alerts
become LinepulseMachineAlert with their labels, go to firing, and reach a real Alertmanager with the
shipped config (docker/alertmanager/alertmanager.yml), routed to the tenant's receivers.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from service.brokers import TansuBroker
from service.brokers.readiness import free_port
from tests.integration.alertmanager import AlertmanagerServer, alertmanager_running
from tests.integration.harness import (
    WorkerProcess,
    listening_addresses,
    produce,
    server_process,
    tail,
    wait_for,
)
from tests.integration.observability import demo_machines, demo_worker, require_executable

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "docker" / "prometheus" / "rules" / "linepulse.yml"
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "linepulse.json"


class PrometheusServer:
    def __init__(self, base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.base_url = base_url
        self.process = process
        self.log = log

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.base_url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            payload = json.loads(exc.read())
        assert payload["status"] == "success", f"{url}: {payload}"
        return payload["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        data = self.api("query", query=promql)
        result: list[dict[str, Any]] = data["result"]
        return result

    def log_tail(self) -> str:
        return tail(self.log)


@contextmanager
def prometheus_scraping(
    worker: WorkerProcess, workdir: Path, alertmanager: AlertmanagerServer | None = None
) -> Iterator[PrometheusServer]:
    binary = require_executable("prometheus")
    config = workdir / "prometheus.yml"
    document: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "linepulse",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"127.0.0.1:{worker.web_port}"]}],
            }
        ],
    }
    if alertmanager is not None:
        target = alertmanager.base_url.removeprefix("http://")
        document["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [target]}]}]}
    config.write_text(yaml.safe_dump(document), encoding="utf-8")
    port = free_port()
    log = workdir / "prometheus.log"
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=info",
    ]
    base_url = f"http://127.0.0.1:{port}"
    with server_process("prometheus", argv, log, base_url) as process:
        yield PrometheusServer(base_url, process, log)


def _dashboard_queries() -> list[tuple[str, str]]:
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    found = []
    for panel in document["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            # Grafana's variables, as the defaults (All, shift, a rate window) would expand them.
            expr = re.sub(r"\$(tenant|site|line|machine|signal)\b", ".*", expr)
            expr = expr.replace("$window", "shift").replace("$__rate_interval", "1m")
            found.append((panel["title"], expr))
    return found


def _open_alerts(worker: WorkerProcess) -> set[tuple[str, ...]]:
    """(tenant, site, line, machine, kind, subject, severity) of every alert the worker has open (its
    alerts here name no product, so their subjects are the metric's)."""
    return {
        (m["tenant"], m["site"], m["line"], m["machine"], a["kind"], a["subject"], a["severity"])
        for m in worker.machines()
        for a in m["alerts"]
    }


def _stop_a_machine(bootstrap: str, worker: WorkerProcess) -> set[tuple[str, ...]]:
    """demo/M01 goes down (jam) a minute after its newest demo event and reports a part out of spec
    eight minutes later: linepulse opens machine_stopped (critical) and quality_out_of_spec.

    Both events stay more than 30 minutes in the past, so LinepulseMachineSilent still holds for it.
    """
    (m01,) = [m for m in worker.machines() if (m["tenant"], m["machine"]) == ("demo", "M01")]
    newest_ms = int(datetime.fromisoformat(m01["last_seen"]).timestamp() * 1000)
    base = {"v": 1, "tenant": "demo", "site": m01["site"], "line": m01["line"], "machine": "M01"}
    events = [
        {**base, "ts": newest_ms + 60_000, "kind": "state", "state": "down", "reason": "jam"},
        {**base, "ts": newest_ms + 480_000, "kind": "quality", "characteristic": "d", "value": 9, "usl": 5},
    ]
    produce(bootstrap, worker.topics["telemetry"], [(b"demo/M01", json.dumps(e).encode()) for e in events])
    wait_for(
        lambda: {alert[4] for alert in _open_alerts(worker)} >= {"machine_stopped", "quality_out_of_spec"},
        30,
        "demo/M01's machine_stopped and quality_out_of_spec alerts",
    )
    return _open_alerts(worker)


def test_prometheus_scrapes_the_worker_and_evaluates_the_rules(tansu: TansuBroker, tmp_path: Path) -> None:
    machines = demo_machines()
    with (
        # Capability series from two parts: the hour of demo data measures a few per machine.
        demo_worker(tansu.bootstrap_servers, tmp_path, capability_min_parts=2) as worker,
        alertmanager_running(tmp_path) as alertmanager,
        prometheus_scraping(worker, tmp_path, alertmanager) as prometheus,
    ):
        # Its pages (every tenant's) listen on the loopback only, LINEPULSE_WEB_HOST's default.
        assert listening_addresses(worker.web_port) == {"127.0.0.1"}
        # Failure counters read 0 before any failure, for every topic written or taken from.
        topics = worker.topics
        written = [topics[name] for name in ("kpis", "alerts", "dead_letters", "line_kpis", "kpis_by_line")]
        written += [f"{worker.app_id}-{table}-changelog" for table in ("machine-state", "line-view")]
        for topic in written:
            assert worker.metric(f'linepulse_send_failures_total{{topic="{topic}"}}') == 0.0, topic
        for topic in (topics["telemetry"], topics["control"], topics["kpis"], topics["kpis_by_line"]):
            assert worker.metric(f'linepulse_batches_fenced_total{{topic="{topic}"}}') == 0.0, topic
        open_alerts = _stop_a_machine(tansu.bootstrap_servers, worker)
        day_series: list[dict[str, Any]] = []

        def one_day_series_per_machine() -> bool:
            day_series[:] = prometheus.query('linepulse_oee_ratio{window="day"}')
            return len(day_series) >= len(machines)

        wait_for(one_day_series_per_machine, 20, "linepulse_oee_ratio{window='day'} per demo machine")
        assert {(s["metric"]["tenant"], s["metric"]["machine"]) for s in day_series} == machines
        for series in day_series:
            labels = series["metric"]
            assert labels["job"] == "linepulse" and labels["instance"] == f"127.0.0.1:{worker.web_port}"
            assert labels["site"] == "p1" and labels["line"] in {"L1", "L2"}
            assert 0.0 <= float(series["value"][1]) <= 1.0

        (up,) = prometheus.query('up{job="linepulse"} == 1')
        assert up["metric"]["instance"] == f"127.0.0.1:{worker.web_port}"
        (target,) = prometheus.api("targets")["activeTargets"]
        assert target["health"] == "up" and not target["lastError"]

        # The rules file loads in a real server and evaluates without errors against real series.
        groups = {group["name"]: group for group in prometheus.api("rules")["groups"]}
        assert set(groups) == {"linepulse.recording", "linepulse.alerts", "linepulse.machine_alerts"}

        def rules_evaluated() -> bool:
            groups.update({group["name"]: group for group in prometheus.api("rules")["groups"]})
            # A rule's health is "unknown" until its first evaluation, then "ok" or "err".
            return all(rule["health"] != "unknown" for g in groups.values() for rule in g["rules"])

        wait_for(rules_evaluated, 15, "every rule evaluated once", interval_s=0.5)
        for group in groups.values():
            for rule in group["rules"]:
                assert rule["health"] == "ok", rule

        def lines_of(promql: str) -> set[str]:
            return {series["metric"]["line"] for series in prometheus.query(promql)}

        # A recording rule may first run before the first scrape landed; the next run fills it.
        wait_for(
            lambda: lines_of('line:linepulse_oee_ratio:mean{window="day"}') == {"L1", "L2"},
            10,
            "mean OEE per demo line",
        )
        assert lines_of('line:linepulse_availability_ratio:time_weighted{window="day"}') == {"L1", "L2"}
        # The ISO-consistent line OEE from the real series: one value per line, a ratio in (0, 1].
        line_oee = prometheus.query('line:linepulse_oee_ratio:time_weighted{window="day"}')
        assert {series["metric"]["line"] for series in line_oee} == {"L1", "L2"}
        assert all(0 < float(series["value"][1]) <= 1 for series in line_oee), line_oee
        # Rates need two scrapes inside the range; then one series per rejection code (all 0 here).
        wait_for(lambda: bool(prometheus.query("linepulse:dead_letters:rate5m")), 10, "dead-letter rate")
        wait_for(lambda: bool(prometheus.query("linepulse:readings:rate1m")), 10, "readings rate")

        # The newest demo events are about an hour old: LinepulseMachineSilent's expression matches
        # every machine (pending, for 5m), proving its labels and arithmetic fit the real series.
        def silent_pending() -> bool:
            alerts = prometheus.query('ALERTS{alertname="LinepulseMachineSilent"}')
            return {(a["metric"]["tenant"], a["metric"]["machine"]) for a in alerts} == machines

        wait_for(silent_pending, 10, "LinepulseMachineSilent pending for every machine")
        assert not prometheus.query('ALERTS{alertname=~"LinepulseWorkerDown|LinepulseNotReady"}')

        # linepulse's own open alerts (the worker's /api/machines) are LinepulseMachineAlert, one per
        # machine, kind, subject and severity, with exactly linepulse's labels (no job/instance: over
        # workers).
        label_names = ("tenant", "site", "line", "machine", "kind", "subject", "severity")

        def forwarded(state: str) -> set[tuple[str, ...]]:
            alerts = prometheus.query(f'ALERTS{{alertname="LinepulseMachineAlert",alertstate="{state}"}}')
            for alert in alerts:
                assert set(alert["metric"]) == {"__name__", "alertname", "alertstate", *label_names}, alert
            return {tuple(alert["metric"][name] for name in label_names) for alert in alerts}

        wait_for(
            lambda: forwarded("pending") | forwarded("firing") == open_alerts,
            10,
            f"LinepulseMachineAlert for each open linepulse alert {sorted(open_alerts)}",
        )
        started = time.monotonic()

        # The line view is two hops behind the machines (kpis -> kpis-by-line -> line-view table, then
        # a scrape): on a loaded machine it can trail the applied events by seconds. A closed hour
        # of each demo line must show before the panels are checked (CI once queried too early).
        wait_for(
            lambda: lines_of('linepulse_line_oee_ratio{window="hour"}') == {"L1", "L2"},
            60,
            "line OEE of a closed hour per demo line",
        )

        # Every Grafana panel query is PromQL this server accepts (api() asserts status success).
        queries = _dashboard_queries()
        assert len(queries) >= 12
        empty = [title for title, expr in queries if not prometheus.query(expr)]
        # Rates over a counter that stopped are 0, not empty; only the alerts tables may be empty,
        # and what held a line, when no machine stopped in its newest closed hour.
        assert set(empty) <= {"Active machine alerts", "Firing Prometheus alerts", "What held the line"}, (
            empty
        )

        # After its `for: 1m` the alert fires, Prometheus sends it to Alertmanager, and Alertmanager
        # notifies the tenant's receivers (critical: the people on shift) with the rule's annotations.
        wait_for(
            lambda: forwarded("firing") == open_alerts, max(5.0, 80 - (time.monotonic() - started)), "firing"
        )

        def received() -> dict[tuple[str, ...], dict[str, Any]]:
            return {
                tuple(alert["labels"].get(name, "") for name in label_names): alert
                for alert in alertmanager.alerts()
                if alert["labels"]["alertname"] == "LinepulseMachineAlert"
            }

        wait_for(lambda: set(received()) == open_alerts, 20, "the forwarded alerts in Alertmanager")
        for labels, alert in received().items():
            assert alert["annotations"]["summary"].startswith(f"{labels[0]}/{labels[3]} "), alert
            assert f"/api/machines?tenant={labels[0]}" in alert["annotations"]["evidence"], alert

        def notified() -> set[tuple[tuple[str, ...], str]]:
            return {
                (tuple(alert["labels"].get(name, "") for name in label_names), receiver)
                for receiver, payload in alertmanager.notifications()
                for alert in payload["alerts"]
                if alert["labels"]["alertname"] == "LinepulseMachineAlert"
            }

        severity = label_names.index("severity")
        expected = {
            (labels, "demo-plant-on-shift" if labels[severity] == "critical" else "demo-plant-managers")
            for labels in open_alerts
            # A critical alert of the same machine inhibits its warnings and infos (by design).
            if labels[severity] == "critical"
            or not any(o[:4] == labels[:4] and o[severity] == "critical" for o in open_alerts)
        }
        wait_for(lambda: notified() >= expected, 20, f"notifications {sorted(expected)}")
        worker.assert_alive()
