"""The start-up check of the telemetry topic's timestamp type warns; it never stops the start."""

from __future__ import annotations

import logging

import pytest

from streams.topics import LOG_APPEND_TIME, TIMESTAMP_TYPE, _check_timestamp_type


def test_a_timestamp_type_the_broker_does_not_report_is_warned_about_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Kafka-compatible service may answer DescribeConfigs without the setting: the start goes on."""
    with caplog.at_level(logging.WARNING, logger="streams.topics"):
        _check_timestamp_type({"telemetry": {"max.message.bytes": "1048588"}}, "telemetry", LOG_APPEND_TIME)
        _check_timestamp_type({"telemetry": {TIMESTAMP_TYPE: "CreateTime"}}, "telemetry", LOG_APPEND_TIME)
        _check_timestamp_type({"telemetry": {TIMESTAMP_TYPE: LOG_APPEND_TIME}}, "telemetry", LOG_APPEND_TIME)
    assert [record.getMessage().split(":")[0] for record in caplog.records] == [
        "message.timestamp.type of topic 'telemetry' could not be read",
        "topic 'telemetry' has message.timestamp.type=CreateTime",
    ]
