"""The Faust worker linepulse runs its apps in: Faust's own, without the terminal spinner.

faust.Worker installs a progress spinner on the root logger whenever the log level is WARN or
above, and to make it spin on every record it sets the root logger to DEBUG. Every debug call in
Faust and aiokafka (several per message and per produce request) then builds a log record, which
a profile of the worker showed costing more CPU than the KPI engine. The worker here keeps the
root logger at the configured level instead.
"""

from __future__ import annotations

import logging

import faust

__all__ = ["QuietWorker", "quiet_worker"]


class QuietWorker(faust.Worker):
    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        """No spinner handler, and the root logger stays at ``level``."""
        self.spinner = None


def quiet_worker(app: faust.App, loglevel: str) -> QuietWorker:
    """A worker for ``app`` logging at ``loglevel``, stdout untouched."""
    return QuietWorker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
