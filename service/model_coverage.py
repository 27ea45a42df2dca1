"""What a registered model serves, and the rule that keeps every machine's model unambiguous.

A model serves machines by key (``machines``), or a machine type within one tenant
(``machine_types`` + ``tenant``). Serving prefers a machine's own model to its type's; between two
models equally specific for a machine it could only guess. So ``linepulse train`` refuses a model
that would tie with another one (it names the other, to retrain under that name or remove), and a
new version must serve what its model's latest version serves (a reused ``--name`` never takes a
model away from its machines).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.exceptions import ConfigError, ModelFileError
from service.model_registry import ModelRegistry, ModelVersion

__all__ = ["Coverage", "Tie", "check_no_tie", "check_same_coverage", "ties"]


@dataclass(frozen=True, slots=True)
class Coverage:
    machines: frozenset[str]
    types: frozenset[str]
    tenant: str | None

    @classmethod
    def of(cls, metadata: Mapping[str, Any]) -> Coverage:
        return cls(
            frozenset(metadata.get("machines", [])),
            frozenset(metadata.get("machine_types", [])),
            metadata.get("tenant"),
        )

    def ties_with(self, other: Coverage) -> list[str]:
        """What both serve at the same specificity."""
        shared = sorted((self.machines & other.machines) - {"*"})
        if self.tenant is not None and self.tenant == other.tenant:
            shared += [f"type {t} of tenant {self.tenant}" for t in sorted(self.types & other.types)]
            if "*" in self.machines and "*" in other.machines:
                shared.append(f"every machine of tenant {self.tenant}")
        return shared

    def describe(self) -> str:
        machines = sorted(self.machines - {"*"})
        parts = [f"machines {machines}"] if machines else []
        if "*" in self.machines:
            parts.append(f"every machine of tenant {self.tenant}")
        if self.types:
            parts.append(f"types {sorted(self.types)} of tenant {self.tenant}")
        return " and ".join(parts) or "no machine"


@dataclass(frozen=True, slots=True)
class Tie:
    served: str  # the first by name, which serving picks
    unused: str
    shared: list[str]

    def describe(self) -> str:
        return (
            f"{self.served} and {self.unused} both serve {', '.join(self.shared)}: workers serve "
            f"{self.served} (the first by name); remove one (linepulse models remove NAME)"
        )


def ties(models: list[tuple[str, Coverage]]) -> list[Tie]:
    """Pairs of models equally specific for a machine, ``models`` sorted by name. ``train`` refuses to
    make one, but copied or hand-edited registry directories can, and serving then picks by name."""
    found = []
    for index, (first, coverage) in enumerate(models):
        for second, other in models[index + 1 :]:
            shared = coverage.ties_with(other)
            if shared:
                found.append(Tie(first, second, shared))
    return found


def check_same_coverage(name: str, coverage: Coverage, existing: list[ModelVersion]) -> None:
    if not existing:
        return
    before = Coverage.of(existing[-1].metadata)
    if before != coverage:
        raise ConfigError(
            f"--name {name}: its versions serve {before.describe()}; this one would serve "
            f"{coverage.describe()}: choose another --name"
        )


def check_no_tie(registry: ModelRegistry, name: str, coverage: Coverage) -> None:
    for other in registry.names():
        if other == name:
            continue
        try:
            theirs = Coverage.of(registry.entry(other).metadata)
        except ModelFileError:
            continue  # a broken model serves nothing
        shared = coverage.ties_with(theirs)
        if shared:
            raise ConfigError(
                f"--name {name}: model {other} already serves {', '.join(shared)}; retrain it "
                f"(--name {other}) or remove it (linepulse models remove {other})"
            )
