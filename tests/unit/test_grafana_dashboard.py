"""The provisioned Grafana dashboard and the Prometheus rules only query metrics linepulse exposes.

The exposed names come from scraping a registry assembled as the worker assembles it (see
tests/unit/metric_names.py), so renaming or dropping a metric of service/metrics.py fails here
instead of leaving a panel, a variable or an alert silently empty.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.observability import promtool_verdict
from tests.unit.metric_names import exposed_sample_names, metric_names_in

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "docker" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "linepulse.json"
RULES = ROOT / "docker" / "prometheus" / "rules" / "linepulse.yml"

REQUIRED_VARIABLES = ("tenant", "site", "line", "machine")


def _dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return document


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # rows may nest their panels


def _queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    document = _dashboard()
    found = [
        (f"panel {panel['title']!r} {target['refId']}", target["expr"])
        for panel in _panels(document["panels"])
        for target in panel.get("targets", [])
    ]
    for variable in document["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            found.append(
                (f"variable {variable['name']}", query["query"] if isinstance(query, dict) else query)
            )
    return found


def _recorded_names() -> set[str]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


def test_the_exposed_names_are_the_real_ones() -> None:
    # A guard on the guard: if the scrape came back thin, every "only known names" check would be weak.
    names = exposed_sample_names()
    for expected in (
        "linepulse_oee_ratio",
        "linepulse_readings_total",
        "linepulse_dead_letters_total",
        "linepulse_machine_state",
        "linepulse_loss_seconds",
        "linepulse_good_units_total",
        "linepulse_active_alerts",
        "linepulse_event_time_seconds",
        "linepulse_ready",
    ):
        assert expected in names
    assert "linepulse_good_units" not in names  # counters are queried as *_total


def test_the_name_extractor_sees_names_and_ignores_label_values() -> None:
    expr = (
        'sum by (code) (rate(linepulse_dead_letters_total{job="linepulse",code!="linepulse_x"}'
        "[$__rate_interval])) / on() group_left line:linepulse_oee_ratio:mean"
    )
    assert metric_names_in(expr) == {"linepulse_dead_letters_total", "line:linepulse_oee_ratio:mean"}
    assert metric_names_in('label_values(linepulse_oee_ratio{tenant=~"$tenant"}, site)') == {
        "linepulse_oee_ratio"
    }


def test_every_dashboard_query_names_only_exposed_metrics() -> None:
    exposed = exposed_sample_names()
    queries = _queries()
    assert len(queries) >= 15
    unknown = {
        where: sorted(metric_names_in(expr) - exposed)
        for where, expr in queries
        if metric_names_in(expr) - exposed
    }
    assert not unknown, f"queries name metrics /metrics does not expose: {unknown}"
    # Every query must select a linepulse metric (or Prometheus' own up/ALERTS).
    for where, expr in queries:
        assert metric_names_in(expr) or "up{" in expr or "ALERTS{" in expr, where


def test_every_rule_names_only_exposed_or_recorded_metrics() -> None:
    exposed = exposed_sample_names() | _recorded_names()
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    for group in groups:
        for rule in group["rules"]:
            unknown = metric_names_in(rule["expr"]) - exposed
            assert not unknown, f"{rule.get('alert') or rule.get('record')} names {sorted(unknown)}"


def test_variables_cascade_from_linepulse_machine_state() -> None:
    """Every machine has its states' series, always; its OEE has no sample while undefined (nothing
    planned: a weekend, or no ideal cycle), which would drop the machine from the lists."""
    variables = {variable["name"]: variable for variable in _dashboard()["templating"]["list"]}
    for name in REQUIRED_VARIABLES:
        query = variables[name]["query"]["query"]
        assert query.startswith("label_values(linepulse_machine_state"), query
        assert query.rstrip().endswith(f", {name})"), query
    # Every per-machine query filters by all four, so a chosen tenant is never mixed with another's;
    # per-line series (no machine label) by tenant, site and line.
    per_machine = ("_ratio", "machine_state", "loss_seconds", "_units_", "linepulse_active_alerts")
    for panel in _panels(_dashboard()["panels"]):
        for target in panel.get("targets", []):
            expr = target["expr"]
            if any(name in expr for name in per_machine):
                per_line = "linepulse_line_" in expr
                for name in REQUIRED_VARIABLES:
                    if not (per_line and name == "machine"):
                        assert f'{name}=~"${name}"' in expr, f"{panel['title']}: no {name} filter"
            if "ALERTS{" in expr:
                # Prometheus' own alerts: a machine's by the chosen tenant, site, line and machine; the
                # worker's (no such labels: worker down, dead letters) always shown, as the `|` allows.
                for name in REQUIRED_VARIABLES:
                    assert f'{name}=~"${name}|"' in expr, f"{panel['title']}: no {name} filter"


@pytest.mark.parametrize(
    ("title", "kind"),
    [
        ("OEE", "bargauge"),
        ("Availability", "bargauge"),
        ("Performance", "bargauge"),
        ("Quality", "bargauge"),
        ("OEE over time", "timeseries"),
        ("Machine state", "state-timeline"),
        ("Top losses this $window", "bargauge"),
        ("Good and scrap units per minute", "timeseries"),
        ("Active machine alerts", "table"),
        ("Dead letters per second", "timeseries"),
        ("Readings per second", "timeseries"),
        ("Cpk shift by shift", "timeseries"),
        ("Ppk, newest shift with enough parts", "bargauge"),
        ("$signal: level and newest reading", "timeseries"),
        ("Sensor readings per second", "timeseries"),
    ],
)
def test_the_dashboard_has_the_panel(title: str, kind: str) -> None:
    panels = {panel["title"]: panel for panel in _panels(_dashboard()["panels"])}
    assert panels[title]["type"] == kind


def test_panels_have_unique_ids_and_use_the_datasource_variable() -> None:
    document = _dashboard()
    assert document["uid"] and document["schemaVersion"] >= 36
    panels = list(_panels(document["panels"]))
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_the_top_losses_panel_sorts_largest_first() -> None:
    panels = {panel["title"]: panel for panel in _panels(_dashboard()["panels"])}
    target = panels["Top losses this $window"]["targets"][0]
    assert target["expr"].startswith("sort_desc(topk(") and target["instant"] is True


def test_provisioning_points_at_the_dashboard_and_prometheus() -> None:
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "linepulse.yml").read_text())
    assert providers["apiVersion"] == 1
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/linepulse"
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"


def test_every_legend_naming_a_machine_or_line_names_its_tenant() -> None:
    """Tenants share machine and line ids (each factory has its L1 and M01): with the tenant variable
    on All, a legend without the tenant shows two factories' series under one name."""
    for panel in _panels(_dashboard()["panels"]):
        for target in panel.get("targets", []):
            legend = target.get("legendFormat", "")
            if "{{machine}}" in legend or "{{line}}" in legend:
                assert "{{tenant}}" in legend, (panel["title"], legend)


def test_aggregations_of_machine_series_keep_the_tenant_apart() -> None:
    """With the tenant variable on All (its default), a sum over machines without ``tenant`` in its
    ``by`` would add two factories' losses into one bar."""
    per_machine = ("_ratio{", "machine_state", "loss_seconds", "_units_", "linepulse_active_alerts")
    checked = 0
    for panel in _panels(_dashboard()["panels"]):
        for target in panel.get("targets", []):
            expr = target["expr"]
            if not any(name in expr for name in per_machine):
                continue
            for labels in re.findall(
                r"\b(?:sum|max|min|avg|count|topk\(\d+,\s*sum)\s+by\s*\(([^)]*)\)", expr
            ):
                checked += 1
                assert "tenant" in {label.strip() for label in labels.split(",")}, (panel["title"], expr)
    assert checked >= 5  # the loss panels, units, machine state and alerts aggregate


def test_graphs_of_capability_indices_do_not_clip_negative_values() -> None:
    """A negative Cpk (the mean outside the spec) is the worst case: a hard axis minimum of 0 drew it
    out of sight. A soft minimum keeps 0 in view and lets the axis extend below it."""
    graphs = [
        panel
        for panel in _panels(_dashboard()["panels"])
        if panel["type"] == "timeseries"
        and any("linepulse_capability{" in target["expr"] for target in panel.get("targets", []))
    ]
    assert graphs, "the dashboard graphs capability indices"
    for panel in graphs:
        defaults = panel["fieldConfig"]["defaults"]
        assert "min" not in defaults, panel["title"]
        assert defaults["custom"].get("axisSoftMin") == 0, panel["title"]


def test_the_machine_state_panel_says_no_data_for_a_machine_silent_in_its_shift(tmp_path: Path) -> None:
    """The last reported state stayed on the panel forever: a machine whose gateway died showed
    green "running". Silent over 30 minutes while scheduled (LinepulseMachineSilent's test) it is
    "no data" (7); off shift, or recently heard from, its state as reported."""
    (panel,) = [p for p in _panels(_dashboard()["panels"]) if p["title"] == "Machine state"]
    expr = panel["targets"][0]["expr"]
    for variable in ("tenant", "site", "line", "machine"):
        expr = expr.replace(f"${variable}", ".*")
    assert panel["fieldConfig"]["defaults"]["mappings"][0]["options"]["7"]["text"] == "no data"
    machines = {"M01": ("0x60", "1x60"), "M02": ("0x60", "0x60"), "M03": ("0+60x60", "1x60")}
    series = []
    for machine, (event_time, scheduled) in machines.items():
        labels = f'tenant="demo",site="p1",line="L1",machine="{machine}"'
        series += [
            {"series": f'linepulse_machine_state{{{labels},state="running"}}', "values": "1x60"},
            {"series": f'linepulse_machine_state{{{labels},state="idle"}}', "values": "0x60"},
            {"series": f"linepulse_event_time_seconds{{{labels}}}", "values": event_time},
            {"series": f"linepulse_scheduled{{{labels}}}", "values": scheduled},
        ]
    # At 40 minutes: M01 last heard of at 0 s while scheduled; M02 the same off shift; M03 current.
    expected: list[dict[str, object]] = [
        {"labels": '{tenant="demo",machine="M01"}', "value": 7},
        {"labels": '{tenant="demo",machine="M02"}', "value": 1},
        {"labels": '{tenant="demo",machine="M03"}', "value": 1},
    ]
    result = promtool_verdict(tmp_path, series, expr, "40m", expected)
    assert result.returncode == 0, result.stdout + result.stderr
