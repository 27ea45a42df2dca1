"""The Kafka clients' repeated log lines: at most one per distinct line and window, counting the rest."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from service.log_throttle import RepeatThrottle, install


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname} {record.getMessage()}")


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


@pytest.fixture
def handlers(clock: _Clock) -> Iterator[tuple[_Collect, _Collect]]:
    """Two handlers on a private root-like logger, sharing one throttle (as install() sets it up)."""
    top = logging.getLogger("throttle-test")
    top.setLevel(logging.DEBUG)
    first, second = _Collect(), _Collect()
    throttle = RepeatThrottle(60.0, loggers=("throttle-test.aiokafka", "throttle-test.kafka"), clock=clock)
    for handler in (first, second):
        handler.addFilter(throttle)
        top.addHandler(handler)
    try:
        yield first, second
    finally:
        for handler in (first, second):
            top.removeHandler(handler)


def _unreachable(node: int) -> None:
    logging.getLogger("throttle-test.aiokafka.conn").error(
        "Unable connect to node with id %s: %s", node, "[Errno 111] Connect call failed"
    )


def test_a_repeated_line_shows_once_per_window_and_the_next_counts_the_rest(
    handlers: tuple[_Collect, _Collect], clock: _Clock
) -> None:
    first, second = handlers
    for _ in range(500):
        _unreachable(1)
        clock.now += 0.05
    line = (
        "throttle-test.aiokafka.conn ERROR Unable connect to node with id 1: [Errno 111] Connect call failed"
    )
    assert first.lines == [line]
    clock.now += 60.0
    _unreachable(1)
    assert first.lines[1] == f"{line} (499 more like this in the last 85 s)"
    # Each handler saw the same lines: one decision per record, not one per handler.
    assert second.lines == first.lines


def test_distinct_lines_levels_and_loggers_are_throttled_apart(
    handlers: tuple[_Collect, _Collect], clock: _Clock
) -> None:
    first, _ = handlers
    for _ in range(3):
        _unreachable(1)
        _unreachable(2)
        logging.getLogger("throttle-test.aiokafka.conn").warning(
            "Unable connect to node with id %s: %s", 1, "[Errno 111] Connect call failed"
        )
        logging.getLogger("throttle-test.kafka.client").error("Unable to update metadata from [1]")
    assert len(first.lines) == 4
    assert any("id 2" in line for line in first.lines)
    assert sum("WARNING" in line for line in first.lines) == 1


def test_linepulse_and_faust_lines_are_never_held_back(handlers: tuple[_Collect, _Collect]) -> None:
    first, _ = handlers
    for _ in range(5):
        logging.getLogger("throttle-test.streams.app").warning("3 record(s) held")
        logging.getLogger("throttle-test.aiokafkaish").error("not a client logger")
    assert len(first.lines) == 10


def test_window_zero_shows_every_line(clock: _Clock) -> None:
    throttle = RepeatThrottle(0.0, clock=clock)
    for _ in range(3):
        record = logging.LogRecord("aiokafka.conn", logging.ERROR, __file__, 1, "down", None, None)
        assert throttle.filter(record)


def test_the_table_of_lines_stays_bounded(clock: _Clock) -> None:
    throttle = RepeatThrottle(60.0, clock=clock, max_keys=4)

    def passes(message: str) -> bool:
        return throttle.filter(logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, message, None, None))

    for index in range(10):
        assert passes(f"took {index} ms")
    assert len(throttle._seen) == 4
    assert not passes("took 9 ms")  # still remembered
    assert passes("took 0 ms")  # forgotten, so shown again


def test_install_puts_one_throttle_on_every_handler_of_the_logger() -> None:
    logger = logging.getLogger("throttle-test-install")
    handlers = [logging.NullHandler(), logging.NullHandler()]
    for handler in handlers:
        logger.addHandler(handler)
    try:
        throttle = install(30.0, logger)
        assert all(handler.filters == [throttle] for handler in handlers)
    finally:
        for handler in handlers:
            logger.removeHandler(handler)


def test_a_negative_window_is_refused() -> None:
    with pytest.raises(ValueError, match="window_s"):
        RepeatThrottle(-1.0)


def test_another_exception_behind_the_same_words_is_shown(clock: _Clock) -> None:
    throttle = RepeatThrottle(60.0, clock=clock)

    def fetcher_error(error: Exception) -> logging.LogRecord:
        return logging.LogRecord(
            "aiokafka.consumer.fetcher",
            logging.ERROR,
            __file__,
            1,
            "Unexpected error in fetcher routine",
            None,
            (type(error), error, None),
        )

    assert throttle.filter(fetcher_error(ValueError("a")))
    assert not throttle.filter(fetcher_error(ValueError("a")))
    assert throttle.filter(fetcher_error(KeyError("b")))


def test_a_malformed_client_call_is_left_to_the_handler(clock: _Clock) -> None:
    throttle = RepeatThrottle(60.0, clock=clock)
    record = logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, "bad %d format", ("x",), None)
    assert throttle.filter(record)  # no TypeError raised into the client's code


def _outage(handler: _Collect, clock: _Clock, seconds: int) -> RepeatThrottle:
    """A reconnect error a second for ``seconds``; returns the handler's throttle."""
    throttle = handler.filters[0]
    assert isinstance(throttle, RepeatThrottle)
    for _ in range(seconds):
        _unreachable(1)
        clock.now += 1.0
    return throttle


def test_the_count_of_a_window_with_no_occurrence_after_it_is_reported_when_it_ends(
    handlers: tuple[_Collect, _Collect], clock: _Clock
) -> None:
    """The end of an outage: no next occurrence carries the count, so the worker asks for it."""
    first, second = handlers
    throttle = _outage(first, clock, 30)
    line = (
        "throttle-test.aiokafka.conn ERROR Unable connect to node with id 1: [Errno 111] Connect call failed"
    )
    throttle.report_ended()  # 30 s into the window: not ended, nothing to say yet
    assert first.lines == [line]
    clock.now += 30.0
    throttle.report_ended()
    assert first.lines == [line, f"{line} (29 more like this in the last 60 s)"]
    throttle.report_ended()  # reported once
    clock.now += 5.0
    _unreachable(1)  # a new outage: shown at once, with no count
    assert first.lines == [line, f"{line} (29 more like this in the last 60 s)", line]
    assert second.lines == first.lines


def test_a_stop_reports_every_count_and_the_stops_own_lines_start_a_new_window(
    handlers: tuple[_Collect, _Collect], clock: _Clock
) -> None:
    first, _ = handlers
    throttle = _outage(first, clock, 10)
    throttle.report_ended(every=True)
    assert first.lines[1].endswith("(9 more like this in the last 10 s)")
    _outage(first, clock, 10)  # the stop waits for the broker a little longer
    assert len(first.lines) == 2
    throttle.report_ended(every=True)
    assert first.lines[2].endswith("(10 more like this in the last 10 s)")


def test_a_count_names_the_exception_the_line_was_logged_with(clock: _Clock) -> None:
    logger = logging.getLogger("throttle-test-exc.aiokafka.consumer.fetcher")
    logger.propagate = False
    collect = _Collect()
    throttle = RepeatThrottle(60.0, loggers=("throttle-test-exc.aiokafka",), clock=clock)
    collect.addFilter(throttle)
    logger.addHandler(collect)
    try:
        for _ in range(3):
            try:
                raise ValueError("a")
            except ValueError:
                logger.exception("Unexpected error in fetcher routine")
        clock.now += 60.0
        throttle.report_ended()
    finally:
        logger.removeHandler(collect)
    assert collect.lines[-1].endswith(
        "Unexpected error in fetcher routine (ValueError: a) (2 more like this in the last 60 s)"
    )
