"""A machine named on a command line: ``TENANT/MACHINE``, or ``MACHINE`` when only one tenant has it."""

from __future__ import annotations

from models.plant import MachineSpec, PlantConfig
from service.exceptions import ConfigError

__all__ = ["UnknownMachine", "find_machine", "machine_option"]

# Listed in the error, so a typo is seen at once; a plant of hundreds is cut off after these.
_LISTED = 12


class UnknownMachine(ValueError):
    """No machine, or several, answer to the reference; each command names its own option."""


def find_machine(plant: PlantConfig, ref: str) -> MachineSpec:
    tenant, sep, machine = ref.rpartition("/")
    if sep:
        spec = plant.machine(tenant, machine)
        if spec is None:
            raise UnknownMachine(f"machine {ref!r} is not in the plant configuration{_known(plant)}")
        return spec
    matches = [spec for spec in plant.machines if spec.id == machine]
    if not matches:
        raise UnknownMachine(f"machine {machine!r} is not in the plant configuration{_known(plant)}")
    if len(matches) > 1:
        tenants = ", ".join(sorted(spec.tenant for spec in matches))
        raise UnknownMachine(
            f"machine {machine!r} exists for several tenants ({tenants}); write TENANT/{machine}"
        )
    return matches[0]


def machine_option(plant: PlantConfig, ref: str, option: str) -> MachineSpec:
    """:func:`find_machine` for a command-line ``option``: a ConfigError names the option."""
    try:
        return find_machine(plant, ref)
    except UnknownMachine as exc:
        raise ConfigError(f"{option}: {exc}") from None


def _known(plant: PlantConfig) -> str:
    keys = [spec.key for spec in plant.machines]
    listed = ", ".join(keys[:_LISTED]) + (f" and {len(keys) - _LISTED} more" if len(keys) > _LISTED else "")
    return f" (it has {listed})"
