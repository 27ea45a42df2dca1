"""Errors raised while fetching, starting or stopping a local Kafka-compatible broker."""

from __future__ import annotations

__all__ = ["BrokerError", "BrokerStartError", "JarFetchError", "MissingToolError"]


class BrokerError(Exception):
    """Base class for every broker-management failure."""


class BrokerStartError(BrokerError):
    """A broker process did not come up (or exited) before answering metadata requests."""


class JarFetchError(BrokerError):
    """The Apache Kafka jars could not be fetched from Maven Central."""


class MissingToolError(BrokerError):
    """An external program (java, mvn, tansu) the broker needs is not installed."""
