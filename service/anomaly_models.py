"""The registry-backed :class:`~models.anomaly.scoring.AnomalyModels` the worker and ``analyze`` use.

Which model serves a machine: a model whose latest version's metadata lists the machine's key
(``tenant/id``) wins over one that lists the machine's type (``machine_types``, the plant file's
``type``), which wins over one that lists ``"*"`` (every machine); among equals, the model name
sorting first. A machine no model lists is not scored. A type's model serves machines of that type
added to the plant after it was trained.

Hot reload: at most every ``reload_interval_s`` (monotonic clock) the registry's manifests are
checked by modification time and size; a changed manifest is re-read and, if its ``latest`` moved,
that version is verified and loaded. Nothing is restarted: the next batch is scored by the new
version, and its alerts name it. A version that fails verification is logged and skipped; the
previous version keeps serving, so a bad upload never takes scoring down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models.anomaly.scoring import AnomalyModel
from models.plant import MachineSpec
from service.exceptions import ModelFileError
from service.model_registry import ModelRegistry
from service.settings import Settings

__all__ = ["RegistryModels", "anomaly_models"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Loaded:
    stamp: tuple[int, int]  # manifest (mtime_ns, size)
    version: str | None
    model: AnomalyModel | None
    machines: frozenset[str]
    machine_types: frozenset[str]


class RegistryModels:
    def __init__(
        self,
        registry: ModelRegistry | Path,
        *,
        reload_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry if isinstance(registry, ModelRegistry) else ModelRegistry(registry)
        self.reload_interval_s = reload_interval_s
        self._clock = clock
        self._next_check = float("-inf")
        self._loaded: dict[str, _Loaded] = {}
        self._by_machine: dict[str, AnomalyModel | None] = {}
        self.errors: list[str] = []  # refusals seen, newest last (bounded)

    def model_for(self, machine: MachineSpec) -> AnomalyModel | None:
        now = self._clock()
        if now >= self._next_check:
            self._next_check = now + self.reload_interval_s
            self.refresh()
        if machine.key not in self._by_machine:
            self._by_machine[machine.key] = self._pick(machine)
        return self._by_machine[machine.key]

    def refresh(self) -> bool:
        """Re-read changed manifests now; True if any served model changed."""
        changed = False
        names = set(self.registry.names())
        for gone in set(self._loaded) - names:
            del self._loaded[gone]
            changed = True
        for name in sorted(names):
            path = self.registry.manifest_path(name)
            try:
                info = path.stat()
            except OSError:
                continue
            stamp = (info.st_mtime_ns, info.st_size)
            current = self._loaded.get(name)
            if current is not None and current.stamp == stamp:
                continue
            changed |= self._reload(name, stamp, current)
        if changed:
            self._by_machine.clear()
        return changed

    def _reload(self, name: str, stamp: tuple[int, int], current: _Loaded | None) -> bool:
        try:
            entry = self.registry.entry(name)
            if current is not None and current.version == entry.version:
                current.stamp = stamp
                return False
            model, entry = self.registry.load(name, entry.version)
        except ModelFileError as exc:
            log.error("anomaly model %s not (re)loaded: %s", name, exc)
            self.errors = [*self.errors[-99:], str(exc)]
            if current is not None:
                current.stamp = stamp  # keep serving the previous version; retry when it changes again
            else:
                self._loaded[name] = _Loaded(stamp, None, None, frozenset(), frozenset())
            return False
        machines = frozenset(str(m) for m in entry.metadata.get("machines", []))
        types = frozenset(str(t) for t in entry.metadata.get("machine_types", []))
        self._loaded[name] = _Loaded(stamp, entry.version, model, machines, types)
        served = sorted(machines) + [f"type {t}" for t in sorted(types)]
        log.info("anomaly model %s %s loaded for %s", name, entry.version, served)
        return True

    def _pick(self, machine: MachineSpec) -> AnomalyModel | None:
        loaded = [entry for _, entry in sorted(self._loaded.items()) if entry.model is not None]
        # the most specific model wins: the machine itself, then its type, then every machine
        for entry in loaded:
            if machine.key in entry.machines:
                return entry.model
        if machine.type is not None:
            for entry in loaded:
                if machine.type in entry.machine_types:
                    return entry.model
        for entry in loaded:
            if "*" in entry.machines:
                return entry.model
        return None


def anomaly_models(settings: Settings) -> RegistryModels | None:
    """The registry-backed models when ``model_registry`` is set (the worker and ``analyze``)."""
    if settings.model_registry is None:
        return None
    return RegistryModels(settings.model_registry, reload_interval_s=settings.model_reload_s)
