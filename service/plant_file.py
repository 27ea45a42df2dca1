"""Loading a plant YAML file into a validated :class:`~models.plant.PlantConfig`.

Errors name the file, the path inside it (``machines[0].ideal_cycle_s``) and the reason.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from models.calendar import PlantCalendar
from models.plant import PlantConfig
from service.exceptions import ConfigError
from service.problem_list import join_problems
from service.strict_yaml import load_yaml

__all__ = ["DEMO_PLANT", "MAX_PLANT_BYTES", "load_demo_plant", "load_plant", "parse_plant"]

DEMO_PLANT = "demo.yaml"
# A plant file of a few hundred machines is tens of KB and an industry cloud's thousands a few MB; one
# past this is the wrong file (a telemetry dump), and parsing it would hold the command for minutes.
MAX_PLANT_BYTES = 16 * 1024 * 1024


def load_plant(path: Path | None) -> PlantConfig:
    """The plant at ``path``, or the built-in demo plant when ``path`` is None."""
    if path is None:
        return load_demo_plant()
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_PLANT_BYTES + 1)
        if len(raw) > MAX_PLANT_BYTES:
            raise ConfigError(
                f"{path}: plant configuration larger than {MAX_PLANT_BYTES // (1024 * 1024)} MiB: "
                "is this the plant file?"
            )
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: plant configuration file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read plant configuration: {exc}") from None
    return parse_plant(text, str(path))


def load_demo_plant() -> PlantConfig:
    text = resources.files("service.plants").joinpath(DEMO_PLANT).read_text(encoding="utf-8")
    return parse_plant(text, f"<built-in {DEMO_PLANT}>")


def parse_plant(text: str, source: str) -> PlantConfig:
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: must be a mapping with timezone, shifts and machines")
    try:
        plant = PlantConfig.model_validate(data)
    except ValidationError as exc:
        # "Value error, " is pydantic's wrapping of our own validators' messages: noise to a user.
        errors = _root_causes(exc.errors(include_url=False))
        problems = [
            f"{_path(error['loc'])}: {error['msg'].removeprefix('Value error, ')}" for error in errors
        ]
        raise ConfigError(f"{source}: " + join_problems(problems)) from None
    try:
        PlantCalendar.from_plant(plant)  # shift plans the calendar cannot tile, e.g. one inside another
    except ValueError as exc:
        raise ConfigError(f"{source}: shifts: {exc}") from None
    for index, site in enumerate(plant.sites):
        try:
            PlantCalendar.for_site(plant, site.tenant, site.site)
        except ValueError as exc:
            raise ConfigError(f"{source}: sites[{index}].shifts: {exc}") from None
    return plant


def _root_causes(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """Without a list's "too short" when an item of it failed: pydantic counts only the valid items,
    so ``days: [monday]`` would also be told it lists no day."""
    failed_inside = {error["loc"][:-1] for error in errors if error["loc"]}
    return [error for error in errors if not (error["type"] == "too_short" and error["loc"] in failed_inside)]


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"
