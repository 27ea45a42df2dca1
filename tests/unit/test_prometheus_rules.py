"""The example Prometheus config and linepulse's rules pass promtool, and promtool can say no.

``promtool check config`` / ``check rules`` validate syntax and PromQL; ``promtool test rules`` runs
tests/promtool/linepulse_test.yml (input series, expected alerts with their annotations, expected
recording results). The broken-copy tests prove these checks fail when they should.
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
CONFIG = ROOT / "docker" / "prometheus" / "prometheus.yml"
RULES = ROOT / "docker" / "prometheus" / "rules" / "linepulse.yml"
RULE_TESTS = ROOT / "tests" / "promtool" / "linepulse_test.yml"

EXPECTED_ALERTS = {
    "LinepulseWorkerDown",
    "LinepulseNotReady",
    "LinepulseDeadLettersRising",
    "LinepulseEventsTooLate",
    "LinepulseMachineSilent",
    "LinepulseShiftOeeLow",
    "LinepulseAnomalyUnscored",
    "LinepulseMachineAlert",
}
# Forwards linepulse's own alerts: the severity is linepulse's (a label of linepulse_active_alerts),
# so the rule must keep it in its aggregation and must not set one of its own.
SEVERITY_FROM_LINEPULSE = {"LinepulseMachineAlert"}
MACHINE_ALERT_BY = "max by (tenant, site, line, machine, kind, subject, severity) (linepulse_active_alerts)"
EXPECTED_RECORDS = {
    "line:linepulse_oee_ratio:mean",
    "linepulse:dead_letters:rate5m",
    "linepulse:readings:rate1m",
}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = "promtool not installed (Debian package prometheus; scripts/install-system-deps)"
        # On CI a missing tool is a broken machine, not a reason to pass silently.
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def _run(promtool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_config_is_valid(promtool: str) -> None:
    result = _run(promtool, "check", "config", CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rules_are_valid(promtool: str) -> None:
    result = _run(promtool, "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_rule_unit_tests_pass(promtool: str) -> None:
    result = _run(promtool, "test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_expected_rules_exist_with_severity_and_annotations() -> None:
    rules = _rules()
    alerts = {rule["alert"]: rule for rule in rules if "alert" in rule}
    assert set(alerts) == EXPECTED_ALERTS
    for name, rule in alerts.items():
        assert rule.get("for"), f"{name} has no for:"
        if name in SEVERITY_FROM_LINEPULSE:
            assert "severity" not in rule.get("labels", {}), f"{name} overrides linepulse's severity"
            assert MACHINE_ALERT_BY in rule["expr"], f"{name} drops a label linepulse alerts by"
        else:
            labels = rule["labels"]
            assert isinstance(labels, dict) and labels["severity"] in {"critical", "warning", "info"}
        annotations = rule["annotations"]
        assert isinstance(annotations, dict) and annotations["summary"] and annotations["description"]
    records = {rule["record"] for rule in rules if "record" in rule}
    assert records >= EXPECTED_RECORDS
    # The unit tests cover every rule: each alert and each recorded series is named there.
    tests_text = RULE_TESTS.read_text(encoding="utf-8")
    for name in [*alerts, *records]:
        assert name in tests_text, f"{name} has no promtool test"


def test_a_broken_rules_file_fails_check_rules(promtool: str, tmp_path: Path) -> None:
    broken = tmp_path / "linepulse.yml"
    text = RULES.read_text(encoding="utf-8")
    target = "expr: linepulse_ready == 0"
    assert target in text
    broken.write_text(text.replace(target, "expr: linepulse_ready == (0"), encoding="utf-8")
    result = _run(promtool, "check", "rules", broken)
    assert result.returncode != 0, result.stdout
    assert "LinepulseNotReady" in result.stdout + result.stderr


def _unit_tests_of_a_changed_copy(
    promtool: str, tmp_path: Path, target: str, replacement: str
) -> subprocess.CompletedProcess[str]:
    """Run the promtool unit tests against a copy of the rules with ``target`` replaced."""
    rules = tmp_path / "linepulse.yml"
    text = RULES.read_text(encoding="utf-8")
    assert target in text
    rules.write_text(text.replace(target, replacement), encoding="utf-8")
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    tests["rule_files"] = [str(rules)]
    test_file = tmp_path / "linepulse_test.yml"
    test_file.write_text(yaml.safe_dump(tests, sort_keys=False), encoding="utf-8")
    assert _run(promtool, "check", "rules", rules).returncode == 0
    return _run(promtool, "test", "rules", test_file)


@pytest.mark.parametrize(
    "replacement",
    [
        # A fixed threshold instead of the plant's target: the plant without a target alerts.
        "< 0.45",
        # A different threshold than the plant's target.
        "< 0.25",
    ],
)
def test_a_changed_threshold_fails_the_rule_unit_tests(
    promtool: str, tmp_path: Path, replacement: str
) -> None:
    """``promtool test rules`` pins behaviour, not just syntax: a different OEE threshold is caught."""
    result = _unit_tests_of_a_changed_copy(
        promtool,
        tmp_path,
        "< on (job, instance) group_left () max_over_time(linepulse_oee_target_ratio[5m])",
        replacement,
    )
    assert result.returncode != 0, result.stdout
    assert "LinepulseShiftOeeLow" in result.stdout + result.stderr


SCHEDULED = "max by (tenant, site, line, machine) (max_over_time(linepulse_scheduled[5m])) == 1"
SILENT_BY = "max by (tenant, site, line, machine) (max_over_time(linepulse_event_time_seconds[5m]))"


@pytest.mark.parametrize(
    ("target", "replacement", "failing"),
    [
        # Judged at any hour: a machine switched off for the weekend would be silent.
        (SCHEDULED, SCHEDULED.replace("== 1", ">= 0"), "LinepulseMachineSilent, time: 58m"),
        (SCHEDULED, SCHEDULED.replace("== 1", ">= 0"), "LinepulseShiftOeeLow, time: 1h5m"),
        # Without keep_firing_for a recovery longer than the 5-minute window resolves and re-raises it.
        ("keep_firing_for: 5m", "keep_firing_for: 0s", "LinepulseMachineSilent, time: 46m"),
        # Per worker: the alert breaks in two when the machine's partition moves.
        (SILENT_BY, "linepulse_event_time_seconds", "LinepulseMachineSilent, time: 38m"),
        # No bridge over the scrapes in which no worker has the machine: the pending alert restarts.
        (
            'max_over_time(linepulse_oee_ratio{window="shift"}[5m])',
            'linepulse_oee_ratio{window="shift"}',
            "LinepulseShiftOeeLow, time: 35m",
        ),
    ],
)
def test_a_changed_silence_or_shift_oee_rule_fails_the_rule_unit_tests(
    promtool: str, tmp_path: Path, target: str, replacement: str, failing: str
) -> None:
    result = _unit_tests_of_a_changed_copy(promtool, tmp_path, target, replacement)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and f"alertname: {failing}," in output, output


@pytest.mark.parametrize(
    ("target", "replacement", "failing_at"),
    [
        # Without keep_firing_for the gap of a rebalance resolves the alert and fires it again.
        ("keep_firing_for: 5m", "keep_firing_for: 0s", "time: 6m"),
        # Kept too long, a real resolution is not notified when the tests expect it.
        ("keep_firing_for: 5m", "keep_firing_for: 10m", "time: 16m"),
        # Per worker instead of over workers: two alerts for one machine during a rebalance.
        (MACHINE_ALERT_BY, "linepulse_active_alerts > 0", "time: 4m"),
        # Summed over workers, the overlap of a rebalance doubles the count in the description.
        (MACHINE_ALERT_BY, MACHINE_ALERT_BY.replace("max", "sum"), "time: 4m"),
        # Without the subject, a machine's two drifting signals would be one alert (one notification).
        (MACHINE_ALERT_BY, MACHINE_ALERT_BY.replace("subject, ", ""), "time: 2m"),
        # Without the tenant, acme/M01 and demo/M01 would be one alert.
        (MACHINE_ALERT_BY, MACHINE_ALERT_BY.replace("tenant, ", ""), "time: 3m"),
    ],
)
def test_a_changed_machine_alert_rule_fails_the_rule_unit_tests(
    promtool: str, tmp_path: Path, target: str, replacement: str, failing_at: str
) -> None:
    result = _unit_tests_of_a_changed_copy(promtool, tmp_path, target, replacement)
    assert result.returncode != 0, result.stdout
    output = result.stdout + result.stderr
    assert f"alertname: LinepulseMachineAlert, {failing_at}," in output, output
