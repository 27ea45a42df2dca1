"""Local Kafka-compatible brokers: Apache Kafka (KRaft, from Maven Central) and Tansu (embedded)."""

from __future__ import annotations

from service.brokers.apache_kafka import KafkaCluster
from service.brokers.endpoint import BrokerEndpoint
from service.brokers.exceptions import BrokerError, BrokerStartError, JarFetchError, MissingToolError
from service.brokers.jars import KAFKA_VERSION, default_cache_dir, fetch_jars, jars_present, libs_dir
from service.brokers.readiness import free_port, wait_until_ready
from service.brokers.tansu import TansuBroker, tansu_binary

__all__ = [
    "KAFKA_VERSION",
    "BrokerEndpoint",
    "BrokerError",
    "BrokerStartError",
    "JarFetchError",
    "KafkaCluster",
    "MissingToolError",
    "TansuBroker",
    "default_cache_dir",
    "fetch_jars",
    "free_port",
    "jars_present",
    "libs_dir",
    "tansu_binary",
    "wait_until_ready",
]
