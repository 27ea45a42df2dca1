"""The topics linepulse reads and writes, and creating them up front with the right partitions.

Topics are created explicitly (never by a producer's auto-create), because a Faust table's changelog
must have as many partitions as its source topic; a telemetry topic auto-created with one partition
would make the worker crash on the first rebalance.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from streams.exceptions import TopicMismatch, TopicSetupError

__all__ = [
    "DEAD_LETTER_HEADROOM_BYTES",
    "DEAD_LETTER_MAX_MESSAGE_BYTES",
    "LOG_APPEND_TIME",
    "MAX_MESSAGE_BYTES",
    "TABLES",
    "TIMESTAMP_TYPE",
    "TopicNames",
    "TopicSpec",
    "admin_client",
    "changelog_topic",
    "durability_config",
    "ensure_topics",
    "partition_count",
    "topic_specs",
]

log = logging.getLogger(__name__)

# Large enough to keep a bad 2 MB message byte for byte in the dead-letter topic.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# A dead letter is the original message (key, value and its own headers, all within what telemetry
# takes) plus linepulse's error headers, capped at streams.dead_letters.CONTEXT_MAX_BYTES: the
# dead-letter topic must take anything telemetry takes, plus this.
DEAD_LETTER_HEADROOM_BYTES = 64 * 1024
DEAD_LETTER_MAX_MESSAGE_BYTES = MAX_MESSAGE_BYTES + DEAD_LETTER_HEADROOM_BYTES
_MAX_MESSAGE = "max.message.bytes"
# The telemetry topic's messages carry the broker's clock (LogAppendTime), not the producer's
# (CreateTime): "an event time in the future" is judged against a message's Kafka timestamp
# (streams.decode), and a producer whose clock runs ahead stamps its CreateTime with the same wrong
# clock, so its far-future event times would pass and move its partition's stream time (windows
# closing early, later valid events "late"). The broker's append time is fixed for the message
# forever, so a replay or a re-applied batch still gets the same verdict.
TIMESTAMP_TYPE = "message.timestamp.type"
LOG_APPEND_TIME = "LogAppendTime"
MIN_INSYNC_REPLICAS = "min.insync.replicas"
# The worker's Faust tables (streams.app, streams.line_stream). Faust creates their changelog topics
# with the worker's partition count (telemetry's), and a table's partition N must hold the keys
# that telemetry's partition N carries: keyed state cannot follow a change of that count.
TABLES = ("machine-state", "line-view")


def changelog_topic(app_id: str, table: str) -> str:
    """Faust's name for a table's changelog topic (``Collection._changelog_topic_name``)."""
    return f"{app_id}-{table}-changelog"


@dataclass(frozen=True, slots=True)
class TopicNames:
    telemetry: str = "telemetry"
    kpis: str = "kpis"
    alerts: str = "alerts"
    dead_letters: str = "telemetry-dead-letters"
    line_kpis: str = "line-kpis"
    # Internal: KPI records regrouped by line, so one worker folds each line's machines.
    kpis_by_line: str = "kpis-by-line"
    control: str = "control"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    config: dict[str, str] = field(default_factory=dict)
    # Created with, and required to keep, the partition count of this topic (keyed alike, so a
    # machine's messages share one partition number and one worker).
    copartitioned_with: str | None = None
    # The topic whose bad messages this one receives, byte for byte: it must take any of them.
    dead_letters_of: str | None = None
    # False: someone else creates it (Faust, a table's changelog); only checked when it exists.
    create: bool = True


def durability_config(replication: int) -> dict[str, str]:
    """Topic configs that make ``acks=all`` mean what it says: with three or more replicas a write
    is acknowledged once two hold it, so a record the worker was told is written survives the loss
    of its leader (a stock broker's default, 1, lets the leader alone acknowledge). Fewer replicas
    keep the default: with two, requiring both would stop every write while one broker is down."""
    return {MIN_INSYNC_REPLICAS: "2"} if replication >= 3 else {}


def topic_specs(
    names: TopicNames, partitions: int, replication: int, app_id: str | None = None
) -> list[TopicSpec]:
    """The topics linepulse creates; with ``app_id``, the worker's table changelogs too (checked,
    never created: Faust creates them, with :func:`durability_config` as well)."""
    durable = durability_config(replication)
    telemetry = {_MAX_MESSAGE: str(MAX_MESSAGE_BYTES), TIMESTAMP_TYPE: LOG_APPEND_TIME, **durable}
    bigger = {_MAX_MESSAGE: str(DEAD_LETTER_MAX_MESSAGE_BYTES), **durable}
    changelogs = [
        TopicSpec(
            changelog_topic(app_id, table),
            partitions,
            replication,
            copartitioned_with=names.telemetry,
            create=False,
        )
        for table in TABLES
        if app_id is not None
    ]
    keyed = names.telemetry
    return [
        TopicSpec(names.telemetry, partitions, replication, telemetry),
        TopicSpec(names.kpis, partitions, replication, dict(durable)),
        TopicSpec(names.alerts, partitions, replication, dict(durable)),
        TopicSpec(names.dead_letters, partitions, replication, bigger, dead_letters_of=names.telemetry),
        TopicSpec(names.line_kpis, partitions, replication, dict(durable)),
        # The line-view table's changelog has the worker's partition count, so this topic must too.
        TopicSpec(names.kpis_by_line, partitions, replication, dict(durable), copartitioned_with=keyed),
        # Commands go to the worker holding the machine's state: the telemetry's partition number.
        TopicSpec(names.control, partitions, replication, dict(durable), copartitioned_with=keyed),
        *changelogs,
    ]


def ensure_topics(
    bootstrap_servers: str, specs: Sequence[TopicSpec], timeout_s: float = 30.0, *, check_configs: bool = True
) -> dict[str, int]:
    """Create missing topics; return every existing topic's actual partition count.

    An existing telemetry topic keeps its partition count (the worker adapts to it); changing the
    count of a keyed topic would move machines between partitions, so it is never done here. A
    co-partitioned topic (control, kpis-by-line) is created with its reference's count; a table
    changelog is left to Faust. Every co-partitioned topic whose count differs from its
    reference's (commands would reach the wrong worker, a table's state the wrong partition: Faust
    fails later with "Unrecognized partition") is named in one :class:`TopicMismatch`, with what
    to do (docs/operations.md, "Changing the partition count"). Any other failure (no broker
    reachable, a creation the cluster refuses) raises :class:`TopicSetupError` naming the servers.

    A dead-letter topic must take any message of the topic it holds dead letters of
    (:func:`_check_dead_letter_size`): a dead letter that the topic refuses would stall the worker
    on bad input. ``check_configs=False`` skips that check, for a broker known not to describe
    configs (the embedded Tansu: the warning would only alarm a new user of ``linepulse run``) and
    for commands that only send to linepulse (``baseline reset``: the worker checks, and says so).
    """
    try:
        return _ensure_topics(bootstrap_servers, specs, timeout_s, check_configs)
    except KafkaTimeoutError as exc:
        raise TopicSetupError(
            f"bootstrap servers {bootstrap_servers}: no answer within {timeout_s:g} s, so the topics "
            f"could not be checked or created ({exc})"
        ) from exc
    except KafkaError as exc:
        # kafka-python's messages name the failure but not the cluster: the caller reports this
        # one line to a user, who needs both.
        raise TopicSetupError(
            f"bootstrap servers {bootstrap_servers}: cannot set up the topics: {exc}"
        ) from exc


@contextlib.contextmanager
def admin_client(bootstrap_servers: str, client_id: str, timeout_s: float) -> Iterator[KafkaAdminClient]:
    """A Kafka admin client for the duration, every request bounded by ``timeout_s``."""
    admin = KafkaAdminClient(
        bootstrap_servers=[server.strip() for server in bootstrap_servers.split(",") if server.strip()],
        client_id=client_id,
        request_timeout_ms=int(timeout_s * 1000),
        bootstrap_timeout_ms=int(timeout_s * 1000),
    )
    try:
        yield admin
    finally:
        admin.close()


def _ensure_topics(
    bootstrap_servers: str, specs: Sequence[TopicSpec], timeout_s: float, check_configs: bool
) -> dict[str, int]:
    with admin_client(bootstrap_servers, "linepulse-admin", timeout_s) as admin:
        existing = set(admin.list_topics())
        counts: dict[str, int] = {}
        # Independent topics first, so a co-partitioned one can take its reference's actual count.
        independent = [spec for spec in specs if spec.copartitioned_with is None]
        dependent = [spec for spec in specs if spec.copartitioned_with is not None]
        for group in (independent, dependent):
            missing = []
            for spec in group:
                if spec.name in existing or not spec.create:
                    continue
                partitions = spec.partitions
                if spec.copartitioned_with is not None:
                    partitions = _count(admin, counts, spec.copartitioned_with)
                missing.append(NewTopic(spec.name, partitions, spec.replication, topic_configs=spec.config))
            if missing:
                # Another worker may create them concurrently: fine, the counts are read below.
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics(missing, timeout_ms=int(timeout_s * 1000))
            for spec in group:
                if spec.create or spec.name in existing:
                    counts[spec.name] = partition_count(admin, spec.name)
        mismatched: list[tuple[TopicSpec, int, int]] = []
        for spec in dependent:
            assert spec.copartitioned_with is not None
            wanted = _count(admin, counts, spec.copartitioned_with)
            if spec.name in counts and counts[spec.name] != wanted:
                mismatched.append((spec, counts[spec.name], wanted))
        if mismatched:
            raise TopicMismatch(f"bootstrap servers {bootstrap_servers}: {_mismatch_reason(mismatched)}")
        if check_configs:
            _check_configs(admin, specs)
        return {spec.name: counts[spec.name] for spec in specs if spec.name in counts}


def _mismatch_reason(mismatched: Sequence[tuple[TopicSpec, int, int]]) -> str:
    """Every topic whose partition count differs from its reference's, and what to do, in one line."""
    parts = []
    for reference in dict.fromkeys(spec.copartitioned_with for spec, _, _ in mismatched):
        wanted = next(want for spec, _, want in mismatched if spec.copartitioned_with == reference)
        named = ", ".join(
            f"{spec.name!r} has {count} partitions"
            for spec, count, _ in mismatched
            if spec.copartitioned_with == reference
        )
        parts.append(f"topic {reference!r} has {wanted} partitions but {named}; they must be equal")
    advice = [
        f"recreate {spec.name!r} with {wanted} partitions"
        for spec, _, wanted in mismatched
        if spec.create  # control holds commands, kpis-by-line records the worker forwards again
    ]
    if any(not spec.create for spec, _, _ in mismatched):
        advice.append(
            "a table's state cannot follow a change of the partition count (keys now hash to other "
            "partitions than their stored state): start the worker with a new --app-id, whose "
            "changelogs are created with the new count and whose state is rebuilt from the topics' "
            "history"
        )
    where = "docs/operations.md, 'Changing the partition count'"
    return f"{'; '.join(parts)}. To fix: {'; '.join(advice)} ({where})"


def _count(admin: KafkaAdminClient, counts: dict[str, int], topic: str) -> int:
    if topic not in counts:
        counts[topic] = partition_count(admin, topic)
    return counts[topic]


_UNKNOWN_TOPIC = 3  # UNKNOWN_TOPIC_OR_PARTITION: also what a just-created topic reports for a moment


def partition_count(admin: KafkaAdminClient, topic: str, wait_s: float = 10.0) -> int:
    deadline = time.monotonic() + wait_s
    while True:
        described = admin.describe_topics([topic])
        error = described[0].get("error_code", 0) if described else -1
        if error == 0:
            return len(described[0]["partitions"])
        if error != _UNKNOWN_TOPIC or time.monotonic() > deadline:
            raise TopicMismatch(f"topic {topic!r} could not be described: {described}")
        # Metadata of a topic created a moment ago may not have reached this broker yet.
        time.sleep(0.1)


def _check_configs(admin: KafkaAdminClient, specs: Sequence[TopicSpec]) -> None:
    """The configs the start checks on existing topics, read in one DescribeConfigs request: a
    dead-letter topic's size limit (:func:`_check_dead_letter_size`) and the telemetry topic's
    timestamp type (:func:`_check_timestamp_type`)."""
    sizes = [(spec.dead_letters_of, spec.name) for spec in specs if spec.dead_letters_of is not None]
    stamped = {spec.name: spec.config[TIMESTAMP_TYPE] for spec in specs if TIMESTAMP_TYPE in spec.config}
    topics = list(dict.fromkeys([*(topic for pair in sizes for topic in pair), *stamped]))
    if not topics:
        return
    described = _describe_configs(admin, topics)
    if described is None:
        return
    for source, dead_letters in sizes:
        _check_dead_letter_size(described, source, dead_letters)
    for topic, wanted in stamped.items():
        _check_timestamp_type(described, topic, wanted)


def _check_dead_letter_size(described: dict[str, dict[str, str]], source: str, dead_letters: str) -> None:
    """Every message ``source`` accepts must fit ``dead_letters`` with linepulse's headers.

    Bad input goes there byte for byte; a dead letter the topic refuses can only be retried (the
    worker waits, :mod:`streams.outbox`), so a topic too small for it stops the start instead.
    """
    source_limit = _int_config(described, source, _MAX_MESSAGE)
    limit = _int_config(described, dead_letters, _MAX_MESSAGE)
    if source_limit > MAX_MESSAGE_BYTES:
        raise TopicMismatch(
            f"topic {source!r} accepts messages of up to {source_limit} bytes "
            f"({_MAX_MESSAGE}) but the worker produces dead letters of at most "
            f"{DEAD_LETTER_MAX_MESSAGE_BYTES} bytes; set {_MAX_MESSAGE}={MAX_MESSAGE_BYTES} or less "
            f"on {source!r}"
        )
    wanted = max(source_limit + DEAD_LETTER_HEADROOM_BYTES, DEAD_LETTER_MAX_MESSAGE_BYTES)
    if limit < wanted:
        raise TopicMismatch(
            f"topic {dead_letters!r} accepts messages of up to {limit} bytes "
            f"({_MAX_MESSAGE}) but {source!r} accepts {source_limit}, and a bad message goes "
            f"to {dead_letters!r} byte for byte with up to {DEAD_LETTER_HEADROOM_BYTES} bytes "
            f"of headers; set {_MAX_MESSAGE}={wanted} on "
            f"{dead_letters!r} (kafka-configs.sh --alter --entity-type topics --entity-name "
            f"{dead_letters} --add-config {_MAX_MESSAGE}={wanted})"
        )


def _check_timestamp_type(described: dict[str, dict[str, str]], topic: str, wanted: str) -> None:
    """Warn, in one line with the fix, when an existing topic's messages do not carry the broker's
    clock. Not altered here: the topic is the user's, and other consumers may rely on CreateTime."""
    actual = described.get(topic, {}).get(TIMESTAMP_TYPE)
    if actual is None:
        # A Kafka-compatible service may leave the setting out: nothing to warn about can be told.
        log.warning("%s of topic %r could not be read: not checked", TIMESTAMP_TYPE, topic)
        return
    if actual != wanted:
        log.warning(
            "topic %r has %s=%s: its messages carry the producers' clocks, so a producer whose clock "
            "runs ahead gets far-future event times past the future check (max_future_s) and moves "
            "its partition's stream time; to have the broker stamp them: kafka-configs.sh --alter "
            "--entity-type topics --entity-name %s --add-config %s=%s (docs/operations.md)",
            topic,
            TIMESTAMP_TYPE,
            actual,
            topic,
            TIMESTAMP_TYPE,
            wanted,
        )


def _int_config(described: dict[str, dict[str, str]], topic: str, name: str) -> int:
    try:
        return int(described[topic][name])
    except (KeyError, ValueError) as exc:
        raise TopicMismatch(f"{name} of {topic!r} could not be read: {described}") from exc


_CHECKED = (_MAX_MESSAGE, TIMESTAMP_TYPE)


def _describe_configs(
    admin: KafkaAdminClient, topics: Sequence[str], wait_s: float = 10.0
) -> dict[str, dict[str, str]] | None:
    """Each topic's effective value of every config in ``_CHECKED``, or None where the broker cannot say.

    Tansu (the embedded broker) does not implement DescribeConfigs (it drops the connection),
    enforces no per-topic limit, and ignores ``message.timestamp.type`` (its messages always carry
    the producer's CreateTime), so there is nothing to check there.
    """
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, topic, configs=dict.fromkeys(_CHECKED)) for topic in topics
    ]
    deadline = time.monotonic() + wait_s
    try:
        while True:
            described = admin.describe_configs(resources, config_filter="all")
            found = described.get("topic", {})
            # kafka-python drops a resource's error code and gives it no configs. The request goes to
            # any broker of the cluster, and one that has not yet applied the metadata of topics
            # created a moment ago answers UnknownTopicOrPartition (as partition_count sees too); a
            # refusal to describe them (no DescribeConfigs permission) looks the same, and stays.
            unknown = [topic for topic in topics if not found.get(topic)]
            if not unknown:
                break
            if time.monotonic() > deadline:
                raise TopicMismatch(
                    f"{' and '.join(_CHECKED)} of {topics} could not be read: the broker described "
                    f"no configs of {unknown} in {wait_s:g} s (topics it does not know, or no "
                    f"permission to describe their configs: kafka-python passes no error on)"
                )
            time.sleep(0.1)
    except KafkaError as exc:  # KafkaConnectionError from Tansu included
        log.warning(
            "the broker did not describe the topics' configs (%r; Tansu, the embedded broker, does not "
            "implement DescribeConfigs, enforces no per-topic limit and ignores %s: its messages carry "
            "the producers' CreateTime, so the future check trusts the producers' clocks): %s of %s "
            "not checked",
            exc,
            TIMESTAMP_TYPE,
            " and ".join(_CHECKED),
            topics,
        )
        return None
    try:
        return {
            topic: {name: str(found[topic][name]["value"]) for name in _CHECKED if name in found[topic]}
            for topic in topics
        }
    except (KeyError, TypeError) as exc:
        raise TopicMismatch(f"{' and '.join(_CHECKED)} of {topics} could not be read: {described}") from exc
