"""The service package's exception hierarchy: every user-facing failure is a ``LinepulseError``."""

from __future__ import annotations

__all__ = ["ConfigError", "LinepulseError", "ModelFileError", "OutputError"]


class LinepulseError(Exception):
    """Base of errors the CLI reports as one clear line (exit code 2) instead of a traceback."""


class ConfigError(LinepulseError):
    """A settings value or a plant file is invalid; the message names the file, field and reason."""


class ModelFileError(LinepulseError):
    """A model artifact is missing, untrusted or tampered with."""


class OutputError(LinepulseError):
    """A file a command writes cannot be written (disk full, no permission); names the option and file."""
