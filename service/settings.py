"""Runtime settings: one frozen object from ``LINEPULSE_*`` environment variables and CLI flags.

Only the service layer reads the environment; everything below gets this object's values passed in.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.exceptions import ConfigError
from service.problem_list import join_problems
from streams.app import StreamConfig
from streams.decode import MAX_PAST_MS_DEFAULT
from streams.topics import TopicNames

__all__ = [
    "OTHER_VARIABLES",
    "Settings",
    "bootstrap_servers_problem",
    "load_settings",
    "unknown_variables_problem",
]

_TOPIC = r"^[A-Za-z0-9._-]{1,200}$"
_SERVER = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):([0-9]{1,5})$")


def bootstrap_servers_problem(text: str) -> str | None:
    """Why ``text`` is not a comma-separated list of HOST:PORT (IPv6 as [ADDR]:PORT), or None."""
    for server in text.split(","):
        match = _SERVER.match(server)
        if match is None:
            return f"{server!r} is not HOST:PORT (an IPv6 address as [ADDR]:PORT)"
        if not 1 <= int(match.group(1)) <= 65535:
            return f"{server!r}: port must be 1-65535"
    return None


Port = Annotated[int, Field(ge=0, le=65535)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LINEPULSE_", frozen=True, extra="forbid")

    bootstrap_servers: str | None = Field(
        default=None,
        description="Kafka bootstrap servers, comma separated. Unset: `run` starts an embedded Tansu broker.",
        pattern=r"^[A-Za-z0-9.\-\[\]:]+(,[A-Za-z0-9.\-\[\]:]+)*$",
    )
    plant_config: Path | None = Field(default=None, description="Plant YAML. Unset: the built-in demo plant.")
    app_id: str = Field(default="linepulse", pattern=_TOPIC, description="Faust app id = consumer group id.")
    topic_telemetry: str = Field(default="telemetry", pattern=_TOPIC)
    topic_kpis: str = Field(default="kpis", pattern=_TOPIC)
    topic_alerts: str = Field(default="alerts", pattern=_TOPIC)
    topic_dead_letters: str = Field(default="telemetry-dead-letters", pattern=_TOPIC)
    topic_line_kpis: str = Field(default="line-kpis", pattern=_TOPIC)
    topic_kpis_by_line: str = Field(default="kpis-by-line", pattern=_TOPIC)
    topic_control: str = Field(default="control", pattern=_TOPIC)
    partitions: int = Field(default=3, ge=1, le=1024, description="Partitions of topics linepulse creates.")
    replication_factor: int = Field(default=1, ge=1, le=16)
    web_host: str = Field(default="127.0.0.1")
    web_port: Port = Field(
        default=6066, description="Worker web port: /metrics, /status, /api/machines, /health, /ready."
    )
    session_timeout_s: float = Field(
        default=10.0, gt=1, le=300, description="Kafka consumer session timeout."
    )
    data_dir: Path = Field(default=Path("var/linepulse"), description="Faust's working directory.")
    max_payload_bytes: int = Field(default=1_048_576, ge=1024, le=8 * 1024 * 1024)
    max_future_s: float = Field(
        default=300.0,
        ge=0,
        # 100 years covers the contract's whole time range (2000-2100): anything more checks nothing more.
        le=3_153_600_000,
        description="Reject event times this far ahead of their message's Kafka timestamp.",
    )
    max_past_s: float = Field(
        default=MAX_PAST_MS_DEFAULT / 1000,
        gt=0,
        le=3_153_600_000,
        description=(
            "Reject event times this far behind their message's Kafka timestamp (a device clock that "
            "fell back: its machine's windows from then to now would all be built and sent)."
        ),
    )
    commit_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="How often consumed offsets are committed."
    )
    batch_max_messages: int = Field(
        default=1000, ge=1, le=100_000, description="Most messages applied as one batch."
    )
    batch_wait_s: float = Field(
        default=0.05, gt=0, le=5, description="Longest a message waits for its batch to fill."
    )
    fetch_wait_s: float = Field(
        default=0.05,
        gt=0,
        le=30,
        description="Longest the broker holds a fetch that finds no data (Faust: 1.5 s, which stalls).",
    )
    stop_timeout_s: float = Field(
        default=25.0,
        ge=1,
        le=3600,
        description="A stop taking longer exits with status 70 (before a supervisor kills it).",
    )
    model_registry: Path | None = Field(
        default=None,
        description="Anomaly model registry directory (`linepulse train`). Unset: no anomaly scoring.",
    )
    model_reload_s: float = Field(
        default=10.0, gt=0, le=3600, description="How often the registry is checked for new model versions."
    )
    log_level: str = Field(default="warn", pattern=r"^(crit|error|warn|info|debug)$")
    log_repeat_window_s: float = Field(
        default=60.0,
        ge=0,
        le=86400,
        description="The Kafka clients' repeated log lines are shown at most once per window (0: all).",
    )

    @property
    def topics(self) -> TopicNames:
        return TopicNames(
            telemetry=self.topic_telemetry,
            kpis=self.topic_kpis,
            alerts=self.topic_alerts,
            dead_letters=self.topic_dead_letters,
            line_kpis=self.topic_line_kpis,
            kpis_by_line=self.topic_kpis_by_line,
            control=self.topic_control,
        )

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, value: str | None) -> str | None:
        problem = None if value is None else bootstrap_servers_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    def stream_config(self, bootstrap_servers: str, partitions: int) -> StreamConfig:
        return StreamConfig(
            app_id=self.app_id,
            bootstrap_servers=bootstrap_servers,
            topics=self.topics,
            partitions=partitions,
            replication=self.replication_factor,
            web_host=self.web_host,
            web_port=self.web_port,
            session_timeout_s=self.session_timeout_s,
            data_dir=self.data_dir,
            max_payload_bytes=self.max_payload_bytes,
            max_future_s=self.max_future_s,
            max_past_s=self.max_past_s,
            commit_interval_s=self.commit_interval_s,
            batch_max_messages=self.batch_max_messages,
            batch_within_s=self.batch_wait_s,
            fetch_wait_s=self.fetch_wait_s,
        )


# LINEPULSE_* variables read elsewhere: the Kafka jars' cache (service.brokers.jars) and the
# evaluation data sets' directory (tests and benchmarks).
OTHER_VARIABLES: Final = frozenset({"LINEPULSE_CACHE_DIR", "LINEPULSE_DATASETS"})


# What Kubernetes puts into every pod of a namespace for each Service (enableServiceLinks, on by
# default): a Service named linepulse or linepulse-worker gives LINEPULSE_SERVICE_HOST,
# LINEPULSE_PORT=tcp://..., LINEPULSE_PORT_6066_TCP_ADDR, LINEPULSE_WORKER_SERVICE_PORT, ...
_SERVICE_LINK = re.compile(
    r"^[A-Z0-9_]+_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT_\d+_(TCP|UDP|SCTP)(_[A-Z]+)?)$"
)
_SERVICE_LINK_URL = re.compile(r"^(tcp|udp|sctp)://")


def _service_link(name: str, value: str) -> bool:
    upper = name.upper()
    if _SERVICE_LINK.match(upper):
        return True
    return upper.endswith("_PORT") and _SERVICE_LINK_URL.match(value) is not None


def unknown_variables_problem(environ: Mapping[str, str]) -> str | None:
    """The LINEPULSE_* variables in ``environ`` that nothing reads (a misspelt name would otherwise
    be ignored without a word, its setting left at the default), with the likely meant name.
    Kubernetes' Service variables (of a Service named linepulse...) are not linepulse's to judge."""
    known = {f"LINEPULSE_{name.upper()}" for name in Settings.model_fields} | OTHER_VARIABLES
    # pydantic-settings reads names in any case, so linepulse_web_port is LINEPULSE_WEB_PORT.
    unknown = sorted(
        name
        for name, value in environ.items()
        if name.upper().startswith("LINEPULSE_")
        and name.upper() not in known
        and not _service_link(name, value)
    )
    if not unknown:
        return None
    named = []
    for name in unknown:
        close = difflib.get_close_matches(name.upper(), sorted(known), n=1, cutoff=0.75)
        named.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return f"unknown setting {', '.join(named)}: no LINEPULSE_* variable of that name (README, Configuration)"


def load_settings(**overrides: Any) -> Settings:
    """Environment first, then non-None CLI overrides; errors name the setting and its variable."""
    problem = unknown_variables_problem(os.environ)
    if problem is not None:
        raise ConfigError(problem)
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            name = ".".join(str(part) for part in error["loc"])
            # The user typed either the option or the variable: name the one this value came from.
            source = _option(name) if name in given else f"LINEPULSE_{name.upper()}"
            problems.append(f"{name} ({source}): {error['msg']}")
        raise ConfigError("invalid settings: " + join_problems(problems)) from None


def _option(name: str) -> str:
    """The command-line option of a setting (``plant_config`` is ``--config`` on every command)."""
    return "--config" if name == "plant_config" else "--" + name.replace("_", "-")
