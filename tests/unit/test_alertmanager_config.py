"""docker/alertmanager/alertmanager.yml passes ``amtool check-config`` and routes as documented.

amtool comes with Debian's ``prometheus-alertmanager`` (scripts/install-system-deps). ``amtool config
routes test`` walks the real routing tree for a label set and prints the receiver, so the routing is
checked by Alertmanager's own code, not by re-reading the YAML. Inhibition and silences need a running
Alertmanager: tests/integration/test_alertmanager.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "docker" / "alertmanager" / "alertmanager.yml"
MACHINE = {"alertname": "LinepulseMachineAlert", "site": "p1", "line": "L1", "machine": "M01"}


@pytest.fixture(scope="module")
def amtool() -> str:
    path = shutil.which("amtool")
    if path is None:
        message = "amtool not installed (Debian package prometheus-alertmanager; scripts/install-system-deps)"
        # On CI a missing tool is a broken machine, not a reason to pass silently.
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def _run(amtool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([amtool, *map(str, args)], capture_output=True, text=True, timeout=60, check=False)


def _receiver(amtool: str, labels: dict[str, str], config: Path = CONFIG) -> str:
    result = _run(
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={config}",
        *(f"{name}={value}" for name, value in labels.items()),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def _config() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    return document


def test_the_config_is_valid(amtool: str) -> None:
    result = _run(amtool, "check-config", CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "4 inhibit rules" in result.stdout


def test_a_broken_config_fails_check_config(amtool: str, tmp_path: Path) -> None:
    broken = tmp_path / "alertmanager.yml"
    text = CONFIG.read_text(encoding="utf-8")
    target = "receiver: demo-plant-on-shift"
    assert target in text
    # A route naming a receiver that does not exist.
    broken.write_text(text.replace(target, "receiver: nobody"), encoding="utf-8")
    result = _run(amtool, "check-config", broken)
    assert result.returncode != 0, result.stdout
    assert "nobody" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        # A tenant's critical machine alerts reach the people on shift, the rest its managers.
        (
            {**MACHINE, "tenant": "demo", "kind": "machine_stopped", "severity": "critical"},
            "demo-plant-on-shift",
        ),
        ({**MACHINE, "tenant": "demo", "kind": "drift", "severity": "warning"}, "demo-plant-managers"),
        # A bad part goes to the managers; parts that keep failing (critical) to the people on shift.
        (
            {**MACHINE, "tenant": "demo", "kind": "quality_out_of_spec", "severity": "warning"},
            "demo-plant-managers",
        ),
        (
            {**MACHINE, "tenant": "demo", "kind": "quality_out_of_spec", "severity": "critical"},
            "demo-plant-on-shift",
        ),
        ({**MACHINE, "tenant": "demo", "kind": "anomaly", "severity": "info"}, "demo-plant-managers"),
        # The machine rules of Prometheus itself route the same way (they carry the machine labels).
        (
            {**MACHINE, "alertname": "LinepulseMachineSilent", "tenant": "demo", "severity": "warning"},
            "demo-plant-managers",
        ),
        # Worker health has no tenant: to whoever runs linepulse, never to a plant.
        (
            {
                "alertname": "LinepulseWorkerDown",
                "job": "linepulse",
                "instance": "w1:6066",
                "severity": "critical",
            },
            "linepulse-operators",
        ),
        # A tenant nobody wrote a route for is not dropped: the operators get it.
        (
            {**MACHINE, "tenant": "acme", "kind": "machine_stopped", "severity": "critical"},
            "linepulse-operators",
        ),
    ],
)
def test_alerts_route_by_tenant_and_severity(amtool: str, labels: dict[str, str], receiver: str) -> None:
    assert _receiver(amtool, labels) == receiver


def test_the_routing_test_can_fail(amtool: str, tmp_path: Path) -> None:
    """With the critical branch gone, a stopped machine would reach the managers, not the shift."""
    changed = tmp_path / "alertmanager.yml"
    document = _config()
    (tenant_route,) = [r for r in document["route"]["routes"] if r["matchers"] == ['tenant="demo"']]
    tenant_route["routes"] = [r for r in tenant_route["routes"] if r["receiver"] != "demo-plant-on-shift"]
    changed.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    labels = {**MACHINE, "tenant": "demo", "kind": "machine_stopped", "severity": "critical"}
    assert _receiver(amtool, labels, changed) == "demo-plant-managers"


def test_notifications_group_by_machine_and_never_mix_tenants() -> None:
    route = _config()["route"]
    assert route["group_by"] == ["tenant", "site", "line", "machine"]
    for child in route["routes"]:
        # A child may group more finely (worker health by instance) but never across tenants.
        group_by = child.get("group_by", route["group_by"])
        assert "tenant" in group_by or child["matchers"] == ['tenant=""'], child


def test_receivers_are_placeholders_that_cannot_reach_anyone_and_notify_resolution() -> None:
    receivers = _config()["receivers"]
    assert receivers
    for receiver in receivers:
        for webhook in receiver["webhook_configs"]:
            # RFC 2606: .invalid never resolves, so an unconfigured stack cannot page a stranger.
            assert ".example.invalid/" in webhook["url"], webhook
            assert webhook["send_resolved"] is True
    text = CONFIG.read_text(encoding="utf-8")
    assert "# email_configs:" in text and "# slack_configs:" in text


def test_critical_inhibits_only_alerts_of_the_same_machine() -> None:
    (rule,) = [
        r
        for r in _config()["inhibit_rules"]
        if 'severity="critical"' in r["source_matchers"] and 'machine=~".+"' in r["source_matchers"]
    ]
    assert rule["equal"] == ["tenant", "site", "line", "machine"]
    # Labels missing on both sides count as equal: without these a LinepulseWorkerDown would mute
    # every worker-level warning. (The real Alertmanager test shows it does not.)
    assert 'machine=~".+"' in rule["source_matchers"] and 'machine=~".+"' in rule["target_matchers"]
