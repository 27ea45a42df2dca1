"""``linepulse models list|remove``: what a model registry holds, and taking a model out of it."""

from __future__ import annotations

import argparse
from pathlib import Path

from service.exceptions import ConfigError, ModelFileError
from service.model_coverage import Coverage, ties
from service.model_registry import ModelRegistry, ModelVersion

__all__ = ["register"]


def _registry(path: Path) -> ModelRegistry:
    if not path.is_dir():
        raise ConfigError(f"--registry: {path}: no such directory")
    return ModelRegistry(path)


def _list(args: argparse.Namespace) -> int:
    registry = _registry(args.registry)
    served: list[tuple[str, Coverage]] = []  # what workers load: ties are only between these
    for name in registry.names():
        try:
            versions, latest = registry.snapshot(name)
        except ModelFileError as exc:
            print(f"{name}  refused: {exc}")
            continue
        meta = latest.metadata
        serving, problem = _serving(registry, versions, latest)
        if serving is not None:
            served.append((name, Coverage.of(serving.metadata)))
        print(
            f"{name}  {latest.version} of {len(versions)}  {meta.get('detector', '?')}  "
            f"serves {Coverage.of(meta).describe()}  threshold {_threshold_text(meta.get('threshold'))}  "
            f"created {latest.created}{_verification(latest, serving, problem)}"
        )
    for tie in ties(served):
        print(f"TIE  {tie.describe()}")
    return 0


def _threshold_text(threshold: object) -> str:
    """The manifest's threshold as listed: informational (workers use the artifact's own), so a
    hand-edited one that is not a number is shown as it is, not a traceback for every model."""
    if threshold is None:
        return "?"
    if isinstance(threshold, int | float) and not isinstance(threshold, bool):
        return f"{threshold:.4g}"
    return f"{threshold!r} (not a number)"


def _serving(
    registry: ModelRegistry, versions: list[ModelVersion], latest: ModelVersion
) -> tuple[ModelVersion | None, str]:
    """The version a worker would serve (the latest if it verifies and loads as a worker would load
    it, else the newest earlier one that does, else none), and why the latest does not ("" if it
    does): the manifest alone looks fine for a corrupted or replaced artifact."""
    problem = ""
    for entry in [latest, *reversed(versions[: versions.index(latest)])]:
        try:
            registry.load_entry(entry)
        except ModelFileError as exc:
            problem = problem or str(exc)
            continue
        return entry, problem
    return None, problem


def _verification(latest: ModelVersion, serving: ModelVersion | None, problem: str) -> str:
    """Empty when workers serve the latest version; else why not and what they serve instead."""
    if serving is latest:
        return ""
    instead = (
        f"workers serve {serving.version}" if serving is not None else "workers serve none of its versions"
    )
    return f"  FAILS VERIFICATION ({problem}); {instead}"


def _remove(args: argparse.Namespace) -> int:
    _registry(args.registry).remove(args.name)
    print(f"removed {args.name}; workers stop serving it at their next reload")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = subparsers.add_parser("models", help="list the models of a registry, or remove one")
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="each model's latest version and what it serves")
    listing.add_argument("--registry", type=Path, required=True, metavar="DIR", help="model registry")
    listing.set_defaults(handler=_list)
    removing = actions.add_parser("remove", help="take a model out (its manifest first, then its files)")
    removing.add_argument("name", metavar="NAME", help="model name, as `models list` shows it")
    removing.add_argument("--registry", type=Path, required=True, metavar="DIR", help="model registry")
    removing.set_defaults(handler=_remove)
