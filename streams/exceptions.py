"""The exception hierarchy of :mod:`streams`: catch :class:`StreamsError` for all of them.

:class:`InvalidTelemetry` and its subclasses mean "this message is not valid input": the agent
sends the original bytes to the dead-letter topic with ``str(exc)`` as the reason and carries on;
anything else is a bug or an outage and is not caught by that policy.
"""

from __future__ import annotations

__all__ = ["FrameError", "InvalidTelemetry", "StreamsError", "TopicMismatch", "TopicSetupError"]


class StreamsError(Exception):
    """Base of every error raised by :mod:`streams`."""


class InvalidTelemetry(StreamsError):
    """A message that does not meet the telemetry contract; ``str()`` is ``"field: reason"``."""

    def __init__(self, field: str, reason: str) -> None:
        # Passing both to Exception keeps the error picklable and its repr informative.
        super().__init__(field, reason)
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class FrameError(InvalidTelemetry):
    """A binary batched frame (:mod:`streams.frames`) that cannot be decoded or is invalid."""


class TopicSetupError(StreamsError):
    """The topics could not be checked or created: no broker reachable, or the cluster refused.

    ``str()`` names the bootstrap servers (and the topic, when one is to blame) and the reason.
    """


class TopicMismatch(TopicSetupError):
    """A topic linepulse needs cannot be described, or differs from what the worker requires."""
