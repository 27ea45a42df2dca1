"""A running broker as clients see it: a name for logs and the bootstrap address list."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BrokerEndpoint"]


@dataclass(frozen=True)
class BrokerEndpoint:
    """``name`` is ``"apache-kafka"`` or ``"tansu"``; ``bootstrap_servers`` is comma separated host:port."""

    name: str
    bootstrap_servers: str
