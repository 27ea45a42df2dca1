"""The subjects of a product's alerts, as the engine makes them, read back without the product."""

from __future__ import annotations

import doctest

import numpy as np

from models import subjects
from models.machine import MachineEngine
from models.subjects import parts_of, series_name, series_of
from service.machine_collector import subject_label
from tests.unit.test_alert_lifecycle import _plant, at


def test_module_docstring_examples_run() -> None:
    assert doctest.testmod(subjects, raise_on_error=False).failed == 0


def test_each_form_reads_back_to_its_series() -> None:
    for product in (None, "P1", "LOT-2024.07_a"):
        assert series_name(series_of("bore", product)) == "bore"
        assert series_name(parts_of("bore", product)) == "bore"
    assert series_of("bore", "P1") != parts_of("bore", "P1"), "stored keys keep their own forms"


def test_every_alert_of_a_products_characteristic_is_labelled_with_the_characteristic() -> None:
    """Parts of product P1 drift, then fall out of spec: drift, SPC and out-of-spec alerts open,
    each with the product in its subject, and the metric's label is the characteristic for all."""
    plant = _plant()
    engine = MachineEngine(plant)
    spec = plant.machines[0]
    state = engine.new_state(spec)
    rng = np.random.default_rng(2)
    for i in range(90):
        value = 25.0 + rng.normal(0.0, 0.006) + (0.03 if i >= 40 else 0.0)
        engine.on_quality(state, spec, at(6) + i * 60_000, "diameter_mm", value, None, 25.02, "P1")
    kinds = {alert.kind for alert in state.alerts.values()}
    assert {"drift", "spc", "quality_out_of_spec"} <= kinds, kinds
    for alert in state.alerts.values():
        assert "P1" in alert.subject, alert
        assert subject_label(alert, spec.id) == "diameter_mm", alert
