"""The README's configuration reference lists every setting there is, under its real variable name."""

from __future__ import annotations

from pathlib import Path

from models.plant import PlantConfig
from service.settings import Settings

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_setting_is_documented_with_its_variable() -> None:
    missing = [name for name in Settings.model_fields if f"`LINEPULSE_{name.upper()}`" not in README]
    assert not missing, f"settings missing from README.md: {missing}"


def test_every_plant_key_is_documented() -> None:
    missing = [name for name in PlantConfig.model_fields if f"`{name}" not in README]
    assert not missing, f"plant keys missing from README.md: {missing}"
