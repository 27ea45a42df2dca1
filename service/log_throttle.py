"""Repeated log lines of the Kafka clients, throttled: each distinct line at most once a window, the
next one saying how many like it were left out.

While a broker is down, aiokafka logs an ERROR for every reconnect attempt, metadata refresh,
coordinator lookup and fetch: a worker of three partitions on a one-broker cluster wrote 2,700
lines in a 30 s outage (1,335 of them the same ``Unable connect to node with id 1``), burying the
worker's own lines that say what the outage does to the data (records held, batches not applied,
the stop deadline). What an operator needs from the client is that the broker is unreachable and
for how long; the count in the next line of each kind keeps that.

A line's count is shown with its next occurrence, or, when none comes before its window ends (the
outage is over), by :meth:`RepeatThrottle.report_ended`, which the worker calls once a window and
when it stops; a line forgotten from the table of the :data:`MAX_KEYS` newest takes its count with it.

Only records of the client libraries' loggers (``aiokafka``, ``kafka`` and their children) are
throttled; linepulse's and Faust's own lines always pass. Lines are told apart by logger, level and
formatted message (and the exception, if the record has one), so two brokers down give two
lines, not one. The filter sits on the root
logger's handlers, where every propagated record passes (a filter on the ``aiokafka`` logger would
see only records logged on exactly that logger, not its children's); one decision per record is
kept on the record, so a record reaching several handlers is counted once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["CLIENT_LOGGERS", "RepeatThrottle", "install"]

CLIENT_LOGGERS: Final = ("aiokafka", "kafka")
# Distinct lines remembered; the oldest is forgotten first (a message with a changing part, such as a
# timing, must not grow the table without bound).
MAX_KEYS: Final = 256
_DECISION: Final = "_linepulse_throttle_pass"


@dataclass(slots=True)
class _Seen:
    shown_at: float
    left_out: int = 0


class RepeatThrottle(logging.Filter):
    """Passes a client library's line at most once per ``window_s`` seconds; 0 passes every line."""

    def __init__(
        self,
        window_s: float,
        loggers: tuple[str, ...] = CLIENT_LOGGERS,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        super().__init__()
        if window_s < 0 or max_keys < 1:
            raise ValueError("window_s must be >= 0 and max_keys >= 1")
        self.window_s = window_s
        self._loggers = loggers
        self._prefixes = tuple(f"{name}." for name in loggers)
        self._clock = clock
        self._max_keys = max_keys
        self._seen: OrderedDict[tuple[str, int, str], _Seen] = OrderedDict()
        self._lock = threading.Lock()  # the Kafka clients log from their own threads too

    def _throttled(self, name: str) -> bool:
        return name in self._loggers or name.startswith(self._prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        decided = getattr(record, _DECISION, None)
        if decided is not None:
            return bool(decided)
        passed = self._decide(record)
        setattr(record, _DECISION, passed)
        return passed

    def _decide(self, record: logging.LogRecord) -> bool:
        if self.window_s == 0 or not self._throttled(record.name):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: the handler reports it (logging.Handler.handleError)
            return True
        if record.exc_info is not None and record.exc_info[1] is not None:
            # Another exception behind the same words is another line.
            error = record.exc_info[1]
            text = f"{message} ({type(error).__name__}: {error})"
        else:
            text = message
        key = (record.name, record.levelno, text)
        now = self._clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen.shown_at < self.window_s:
                seen.left_out += 1
                return False
            self._seen[key] = _Seen(now)
            self._seen.move_to_end(key)
            while len(self._seen) > self._max_keys:
                self._seen.popitem(last=False)
        if seen is not None and seen.left_out:
            record.msg = f"{message}{_count(seen, now)}"
            record.args = None
        return True

    def report_ended(self, *, every: bool = False) -> None:
        """Log, on its own logger, the count of each line left out in a window that has ended with no
        occurrence since: the line's next occurrence is then shown at once. ``every``: in any window,
        as the worker stops (the count then starts a new window, which the stop's own lines of the
        same kind do not interrupt)."""
        now = self._clock()
        counts: list[tuple[str, int, str]] = []
        with self._lock:
            for key, seen in list(self._seen.items()):
                if not seen.left_out:
                    continue
                if now - seen.shown_at >= self.window_s:
                    del self._seen[key]
                elif not every:
                    continue
                name, level, text = key  # the line as its count reads: message, and exception if any
                counts.append((name, level, f"{text}{_count(seen, now)}"))
                seen.shown_at, seen.left_out = now, 0
        for name, level, text in counts:
            logger = logging.getLogger(name)
            record = logger.makeRecord(name, level, __file__, 0, text, (), None)
            setattr(record, _DECISION, True)  # a count, not another occurrence
            logger.handle(record)


def _count(seen: _Seen, now: float) -> str:
    return f" ({seen.left_out} more like this in the last {now - seen.shown_at:.0f} s)"


def install(window_s: float, logger: logging.Logger | None = None) -> RepeatThrottle:
    """One throttle on every handler of ``logger`` (the root logger by default); returns it."""
    throttle = RepeatThrottle(window_s)
    for handler in (logger or logging.getLogger()).handlers:
        handler.addFilter(throttle)
    return throttle
