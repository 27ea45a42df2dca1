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
    listed: list[tuple[str, Coverage]] = []
    for name in registry.names():
        try:
            versions, latest = registry.snapshot(name)
        except ModelFileError as exc:
            print(f"{name}  refused: {exc}")
            continue
        meta = latest.metadata
        coverage = Coverage.of(meta)
        listed.append((name, coverage))
        print(
            f"{name}  {latest.version} of {len(versions)}  {meta.get('detector', '?')}  "
            f"serves {coverage.describe()}  threshold {meta.get('threshold', float('nan')):.4g}  "
            f"created {latest.created}{_verification(registry, latest)}"
        )
    for tie in ties(listed):
        print(f"TIE  {tie.describe()}")
    return 0


def _verification(registry: ModelRegistry, latest: ModelVersion) -> str:
    """Empty when the latest artifact verifies and loads as a worker would load it; else why not.

    The manifest alone looks fine for a corrupted or replaced artifact, and a worker then serves an
    earlier version (or none), so the listing must not show it as if it were being served.
    """
    try:
        registry.load_entry(latest)
    except ModelFileError as exc:
        return f"  FAILS VERIFICATION ({exc}); workers serve the newest earlier version that verifies, if any"
    return ""


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
