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


def _patterns(schema: object) -> set[str]:
    """Every ``pattern`` in a JSON Schema fragment (an optional field nests it in ``anyOf``)."""
    if isinstance(schema, dict):
        found = {str(schema["pattern"])} if "pattern" in schema else set()
        for value in schema.values():
            found |= _patterns(value)
        return found
    if isinstance(schema, list):
        return set().union(*(_patterns(item) for item in schema)) if schema else set()
    return set()


def test_every_coded_telemetry_field_shows_its_pattern_in_the_readme_and_docs() -> None:
    """A code outside the pattern dead-letters the whole message, so users must see the pattern
    next to the field, not just "code"."""
    from streams import contract

    docs = (Path(__file__).parents[2] / "docs" / "telemetry.md").read_text()
    section = README.split("### `telemetry` (input)", 1)[1].split("\n### ", 1)[0]
    table_rows = [line for line in section.splitlines() if line.startswith("| ")]
    patterned: set[str] = set()
    for model in (contract.StateEvent, contract.CountEvent, contract.CycleEvent, contract.QualityEvent):
        for name, schema in model.model_json_schema()["properties"].items():
            if contract.ID_PATTERN in _patterns(schema):
                patterned.add(name)
    assert {"reason", "scrap_reason", "product", "machine"} <= patterned
    shown = contract.ID_PATTERN.strip("^$")
    for name in sorted(patterned):
        rows = [row for row in table_rows if f"`{name}`" in row]
        assert rows and all(shown in row for row in rows), f"README telemetry table: {name} lacks {shown}"
        line = next((text for text in docs.splitlines() if f"`{name}`" in text and shown in text), None)
        assert line is not None, f"docs/telemetry.md: {name} lacks {shown}"
