"""Plant YAML that PyYAML and pydantic would read silently wrong is refused, naming what and where:
a repeated key (last one won), a boolean in a numeric field (``on`` was 1.0) and nesting deep
enough to exhaust the recursion limit (a RecursionError traceback)."""

from __future__ import annotations

import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from models.monitoring_config import MonitorSettings
from models.plant import AlertRules, MachineSpec, PlantConfig
from service.exceptions import ConfigError
from service.plant_file import load_plant, parse_plant
from service.strict_yaml import MAX_DEPTH

MINIMAL = """\
timezone: Asia/Seoul
shifts:
  - {name: day, start: "06:00", end: "14:00"}
machines:
  - {tenant: acme, site: p1, line: L1, id: M01, ideal_cycle_s: 12}
"""


def refused(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_plant(text, "plant.yaml")
    return str(caught.value)


def test_a_second_machines_block_is_refused_not_the_first_one_dropped() -> None:
    text = MINIMAL + "machines:\n  - {tenant: acme, site: p1, line: L1, id: M09, ideal_cycle_s: 5}\n"
    message = refused(text)
    assert "duplicate key 'machines' (first at line 4, again at line 6)" in message, message


def test_a_repeated_timezone_is_refused() -> None:
    message = refused(MINIMAL + "timezone: UTC\n")
    assert "duplicate key 'timezone' (first at line 1, again at line 6)" in message, message


def test_a_key_repeated_inside_a_nested_flow_mapping_is_refused() -> None:
    text = MINIMAL.replace("ideal_cycle_s: 12}", "ideal_cycle_s: 12, ideal_cycle_s: 9}")
    assert "duplicate key 'ideal_cycle_s' (first at line 5, again at line 5)" in refused(text)


def test_merge_keys_may_still_be_overridden() -> None:
    text = MINIMAL.replace(
        "machines:\n  - {tenant: acme, site: p1, line: L1, id: M01, ideal_cycle_s: 12}\n",
        "base: &base {tenant: acme, site: p1, line: L1, ideal_cycle_s: 12}\n"
        "machines:\n  - {<<: *base, id: M01, ideal_cycle_s: 7}\n",
    )
    # `base` is no plant field: the merge itself must pass the loader and reach validation.
    message = refused(text)
    assert "base: Extra inputs are not permitted" in message and "duplicate" not in message, message


def test_deep_nesting_is_a_config_error_not_a_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 10_000 + "]" * 10_000 + "\n")
    with pytest.raises(ConfigError) as caught:
        load_plant(path)
    assert f"nested deeper than {MAX_DEPTH} levels" in str(caught.value)
    assert str(caught.value).startswith(f"{path}: not valid YAML at line 1")


def _numeric_fields(model: type[BaseModel]) -> list[str]:
    def numeric(annotation: object) -> bool:
        if annotation in (int, float):
            return True
        if typing.get_origin(annotation) in (typing.Union, types.UnionType, typing.Annotated):
            return any(numeric(arg) for arg in typing.get_args(annotation))
        return False

    return [name for name, field in model.model_fields.items() if numeric(field.annotation)]


def _yaml_for(path: str, value: str) -> str:
    """MINIMAL with ``value`` at the dotted ``path`` (``alerts.oee_below``, ``machines.ideal_cycle_s``)."""
    head, _, field = path.rpartition(".")
    if head == "machines":
        return MINIMAL.replace("ideal_cycle_s: 12}", f"{field}: {value}}}")
    if head == "machines.products":
        return MINIMAL.replace("ideal_cycle_s: 12}", f"products: {{{field}: {value}}}}}")
    if head.startswith("monitoring."):
        kind = head.removeprefix("monitoring.")
        if kind == "overrides":
            return MINIMAL + f"monitoring:\n  overrides:\n    spindle_temp: {{{field}: {value}}}\n"
        return MINIMAL + f"monitoring:\n  {kind}: {{{field}: {value}}}\n"
    if head:
        return MINIMAL + f"{head}: {{{field}: {value}}}\n"
    return MINIMAL + f"{field}: {value}\n"


NUMERIC_PATHS = (
    [f"machines.{name}" for name in _numeric_fields(MachineSpec)]
    + ["machines.products.P1"]
    + [name for name in _numeric_fields(PlantConfig)]
    + [f"alerts.{name}" for name in _numeric_fields(AlertRules)]
    + [
        f"monitoring.{kind}.{name}"
        for kind in ("signals", "characteristics", "cycle_time", "temperatures", "overrides")
        for name in _numeric_fields(MonitorSettings)
    ]
)


def test_every_numeric_field_is_found() -> None:
    # The introspection must see the fields the audit found coerced, or the test below proves nothing.
    for path in (
        "alerts.oee_below",
        "machines.ideal_cycle_s",
        "allowed_lateness_s",
        "monitoring.signals.lsl",
        "monitoring.cycle_time.baseline_n",
    ):
        assert path in NUMERIC_PATHS


@pytest.mark.parametrize("path", NUMERIC_PATHS)
@pytest.mark.parametrize("word", ["on", "yes", "true", "off"])
def test_a_yaml_boolean_in_a_numeric_field_is_refused_naming_the_field(path: str, word: str) -> None:
    message = refused(_yaml_for(path, word))
    field = path.rpartition(".")[2]
    assert "must be a number, not the boolean" in message, message
    assert field in message, message


def test_ints_still_stand_for_floats_and_counts_stay_ints() -> None:
    text = MINIMAL + (
        "allowed_lateness_s: 30\nalerts: {oee_below: 0}\nmonitoring:\n  signals: {baseline_n: 30}\n"
    )
    plant = parse_plant(text, "plant.yaml")
    assert plant.allowed_lateness_s == 30.0 and plant.alerts.oee_below == 0.0
    assert plant.machines[0].ideal_cycle_s == 12.0
    assert plant.monitoring.signals.baseline_n == 30


@pytest.mark.parametrize(
    ("holiday", "reason"), [("2026-02-30", "day is out of range"), ("2026-13-01", "month must be in 1..12")]
)
def test_a_date_that_does_not_exist_is_refused_at_its_line_not_a_traceback(holiday: str, reason: str) -> None:
    message = refused(MINIMAL + f"holidays: [2026-01-01, {holiday}]\n")
    assert message.startswith("plant.yaml: not valid YAML at line 6, column 24: "), message
    assert f"'{holiday}' looks like a date but is none ({reason}" in message, message
