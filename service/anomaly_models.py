"""The registry-backed :class:`~models.anomaly.scoring.AnomalyModels` the worker and ``analyze`` use.

Which model serves a machine: a model whose latest version's metadata lists the machine's key
(``tenant/id``) wins over one that lists the machine's type (``machine_types``, the plant file's
``type``, within the model's ``tenant``), which wins over one that lists ``"*"`` (every machine of
the model's ``tenant``);
among equals, the model name sorting first. A machine no model lists is not scored. A type's model
serves machines of that type added to the plant after it was trained.

Hot reload: at most every ``reload_interval_s`` (monotonic clock) the registry's manifests are
checked by modification time and size; a changed manifest is re-read and, if its ``latest`` moved,
that version is verified and loaded. Nothing is restarted: the next batch is scored by the new
version, and its alerts name it. A version that fails verification is logged and skipped; the newest
earlier version that verifies serves instead (after a restart too), so a bad upload never takes
scoring down. Whatever goes wrong reading the registry is logged and leaves the models loaded as
they were: it never fails the telemetry message that happened to trigger the check.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from models.anomaly.scoring import AnomalyModel
from models.plant import MachineSpec
from service.exceptions import ConfigError, ModelFileError
from service.model_coverage import Coverage, ties
from service.model_registry import ModelRegistry, ModelVersion
from service.settings import Settings

__all__ = ["RegistryModels", "anomaly_models"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Loaded:
    stamp: tuple[int, int]  # manifest (mtime_ns, size)
    version: str | None
    model: AnomalyModel | None
    coverage: Coverage  # what it serves; type models within their tenant only


_NOTHING: Final = Coverage(frozenset(), frozenset(), None)
_UNREADABLE: Final = (-1, -1)  # the stamp of a manifest that could not even be looked at


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
        self._registry_failure: str | None = None  # why the last listing failed, if it did
        self._listed = False  # the registry has been listed once: what it lacks is really gone

    def model_for(self, machine: MachineSpec) -> AnomalyModel | None:
        now = self._clock()
        if now >= self._next_check:
            self._next_check = now + self.reload_interval_s
            try:
                self.refresh()
            except Exception as exc:  # the registry is only read for scoring: it must never cost a message
                self._registry_unreadable(exc)
            else:
                if self._registry_failure is not None:
                    log.warning("anomaly model registry readable again")
                    self._registry_failure = None
        if machine.key not in self._by_machine:
            self._by_machine[machine.key] = self._pick(machine)
        return self._by_machine[machine.key]

    def may_still_serve(self, label: str) -> bool:
        """Whether the model version ``label`` (the one that opened a machine's episode) may still
        serve the machine though none does now: the registry could not be listed since this process
        started, or that model's manifest or versions could not be read or verified. A worker started
        while the registry is unreadable must not end open episodes as if their models were removed."""
        if not self._listed:
            return True
        entry = self._loaded.get(label.rpartition("@")[0])
        return entry is not None and entry.model is None

    def refresh(self) -> bool:
        """Re-read changed manifests now; True if any served model changed."""
        changed = False
        if not self.registry.root.is_dir():
            # Moved, or its share unmounted: not "every model removed" (the listing would be empty).
            raise FileNotFoundError(errno.ENOENT, "the registry directory is gone", str(self.registry.root))
        names = set(self.registry.names())
        self._listed = True
        for gone in set(self._loaded) - names:
            del self._loaded[gone]
            changed = True
        for name in sorted(names):
            path = self.registry.manifest_path(name)
            current = self._loaded.get(name)
            try:
                info = path.stat()
            except OSError as exc:  # no permission, a link loop: refused once, what it served kept
                if current is None or current.stamp != _UNREADABLE:
                    self._refused(name, ModelFileError(f"{path}: unreadable manifest ({exc})"))
                    self._keep(name, _UNREADABLE, current)
                continue
            stamp = (info.st_mtime_ns, info.st_size)
            if current is not None and current.stamp == stamp:
                continue
            try:
                changed |= self._reload(name, stamp, current)
            except Exception as exc:  # a refusal the registry did not foresee: still only this model's
                self._refused(name, exc)
                self._keep(name, stamp, current)
        if changed:
            self._by_machine.clear()
            served = [(name, entry.coverage) for name, entry in sorted(self._loaded.items()) if entry.model]
            for tie in ties(served):
                log.warning("anomaly models tie: %s", tie.describe())
        return changed

    def _reload(self, name: str, stamp: tuple[int, int], current: _Loaded | None) -> bool:
        try:
            versions, latest = self.registry.snapshot(name)
        except ModelFileError as exc:  # the manifest itself: nothing in it can be trusted
            self._refused(name, exc)
            self._keep(name, stamp, current)
            return False
        if current is not None and current.version == latest.version:
            current.stamp = stamp
            return False
        found = self._newest_verified(name, versions, latest, current)
        if found is None:
            self._keep(name, stamp, current)
            return False
        model, entry = found
        if current is not None and current.version == entry.version:
            current.stamp = stamp
            return False
        coverage = Coverage.of(entry.metadata)
        self._loaded[name] = _Loaded(stamp, entry.version, model, coverage)
        log.info("anomaly model %s %s loaded for %s", name, entry.version, coverage.describe())
        return True

    def _newest_verified(
        self,
        name: str,
        versions: list[ModelVersion],
        latest: ModelVersion,
        current: _Loaded | None,
    ) -> tuple[AnomalyModel, ModelVersion] | None:
        """``latest``, else the newest earlier version that verifies: a refused upload leaves the
        previous version serving, after a restart too."""
        earlier = versions[: versions.index(latest)]
        for entry in [latest, *reversed(earlier)]:
            if current is not None and current.model is not None and current.version == entry.version:
                return current.model, entry
            try:
                return self.registry.load_entry(entry), entry  # no second read of the manifest
            except ModelFileError as exc:
                self._refused(name, exc)
        return None

    def _keep(self, name: str, stamp: tuple[int, int], current: _Loaded | None) -> None:
        """Keep serving what was loaded (nothing, the first time: what it would serve is unknown);
        retry when the manifest changes."""
        if current is not None:
            current.stamp = stamp
        else:
            self._loaded[name] = _Loaded(stamp, None, None, _NOTHING)

    def _registry_unreadable(self, exc: Exception) -> None:
        """A registry that stays unreadable is logged once, not at every check (every 10 s), until
        the reason changes or it recovers."""
        text = f"{type(exc).__name__}: {exc}"
        if text == self._registry_failure:
            log.debug("anomaly model registry still unreadable: %s", text)
            return
        self._registry_failure = text
        self._refused("(registry)", exc)

    def _refused(self, name: str, exc: Exception) -> None:
        text = str(exc) if isinstance(exc, ModelFileError) else f"{type(exc).__name__}: {exc}"
        log.error("anomaly model %s not (re)loaded: %s", name, text)
        self.errors = [*self.errors[-99:], text]

    def _pick(self, machine: MachineSpec) -> AnomalyModel | None:
        loaded = [entry for _, entry in sorted(self._loaded.items()) if entry.model is not None]
        # the most specific model wins: the machine itself, then its type, then every machine
        for entry in loaded:
            if machine.key in entry.coverage.machines:
                return entry.model
        if machine.type is not None:
            for entry in loaded:
                # A type's model learnt from one tenant's machines never serves another tenant's.
                coverage = entry.coverage
                if machine.type in coverage.types and coverage.tenant == machine.tenant:
                    return entry.model
        for entry in loaded:
            if "*" in entry.coverage.machines and entry.coverage.tenant == machine.tenant:
                return entry.model
        return None


def anomaly_models(settings: Settings) -> RegistryModels | None:
    """The registry-backed models when ``model_registry`` is set (the worker and ``analyze``)."""
    if settings.model_registry is None:
        return None
    if not settings.model_registry.is_dir():
        # A typo here would otherwise mean a worker that silently scores nothing.
        raise ConfigError(
            f"model_registry (--model-registry, LINEPULSE_MODEL_REGISTRY): {settings.model_registry}: "
            "no such directory"
        )
    return RegistryModels(settings.model_registry, reload_interval_s=settings.model_reload_s)
