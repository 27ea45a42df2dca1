"""The simulator's one exception hierarchy, so callers can catch a bad spec apart from a bug."""

from __future__ import annotations

from service.exceptions import LinepulseError

__all__ = ["SimulatorError", "SpecError"]


class SimulatorError(LinepulseError):
    """Base class of every error the simulator raises on purpose."""


class SpecError(SimulatorError, ValueError):
    """A user-supplied value (duration, start time, fault spec, plant file) is not acceptable.

    The message says what was wrong and what would be accepted; the CLI prefixes the option name.
    """
