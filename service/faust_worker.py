"""The Faust worker linepulse runs its apps in: Faust's own, without the terminal spinner.

faust.Worker installs a progress spinner on the root logger whenever the log level is WARN or
above, and to make it spin on every record it sets the root logger to DEBUG. Every debug call in
Faust and aiokafka (several per message and per produce request) then builds a log record, which
a profile of the worker showed costing more CPU than the KPI engine. The worker here keeps the
root logger at the configured level instead.

It throttles the Kafka clients' repeated log lines (:mod:`service.log_throttle`): during a broker
outage aiokafka logs dozens of identical errors a second. Once a window, and when it stops, it logs
how many of each were left out in a window that ended with none since (the end of an outage).

It also bounds its own stop (:mod:`streams.stop_deadline`): whatever makes it stop, the process
exits once the stop has taken longer than the deadline it is given.
"""

from __future__ import annotations

import logging

import faust
from mode import Service

from service.log_throttle import RepeatThrottle
from service.log_throttle import install as install_log_throttle
from streams.stop_deadline import StopDeadline

__all__ = ["QuietWorker", "quiet_worker"]


class QuietWorker(faust.Worker):
    stop_deadline: StopDeadline | None = None
    log_repeat_window_s: float = 0.0
    log_throttle: RepeatThrottle | None = None

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        """No spinner handler, the root logger stays at ``level``, and its handlers (just set up by
        Faust) throttle the Kafka clients' repeated lines."""
        self.spinner = None
        self.log_throttle = install_log_throttle(self.log_repeat_window_s, logger)

    @Service.task
    async def _report_left_out_lines(self) -> None:
        """The counts of lines whose window ended with no occurrence since, once a window."""
        if self.log_repeat_window_s <= 0:
            return
        while not self.should_stop:
            await self.sleep(self.log_repeat_window_s)
            if self.log_throttle is not None:
                self.log_throttle.report_ended()

    async def on_stop(self) -> None:
        """The first thing a stop does (a SIGTERM's included): an idle worker's stop during a broker
        outage would otherwise wait in Faust's final commit for as long as the broker is down."""
        if self.stop_deadline is not None:
            self.stop_deadline.arm("the worker stopping")
        if self.log_throttle is not None:
            self.log_throttle.report_ended(every=True)
        await super().on_stop()


def quiet_worker(
    app: faust.App,
    loglevel: str,
    stop_deadline: StopDeadline | None = None,
    log_repeat_window_s: float = 0.0,
) -> QuietWorker:
    """A worker for ``app`` logging at ``loglevel``, stdout untouched, whose stop is bounded by
    ``stop_deadline`` (armed when the stop begins), showing each repeated Kafka client line at most
    once per ``log_repeat_window_s`` (0: every line)."""
    worker = QuietWorker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.stop_deadline = stop_deadline
    worker.log_repeat_window_s = log_repeat_window_s
    return worker
