"""The directory a command writes its files to (``--out``), created or refused with a clear error."""

from __future__ import annotations

from pathlib import Path

from service.exceptions import ConfigError

__all__ = ["output_dir"]


def output_dir(path: Path, option: str = "--out") -> Path:
    """Create ``path`` (and its parents) if needed; ConfigError naming ``option`` if it cannot be one."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot create it ({exc.strerror or exc})") from None
    return path
