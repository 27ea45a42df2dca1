"""A malformed HTTP request is the client's mistake: one WARNING naming it, not an ERROR with a traceback.

aiohttp answers such a request (a request line over 8,190 bytes, a broken header) with a correct 400,
but logs it through ``aiohttp.server`` as "Error handling request" at ERROR with the parser's
traceback, which reads like a worker fault to whoever watches the log.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["install_bad_request_log"]

SERVER_LOGGER = "aiohttp.server"
_MAX_REASON_CHARS = 200


class _BadRequestAsWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            peer = record.getMessage().removeprefix("Error handling request from ")
            reason = " ".join(str(error.message).split())[:_MAX_REASON_CHARS]
            record.msg = "bad HTTP request from %s: answered %d, %s"
            record.args = (peer, error.code, reason)
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
            record.exc_info, record.exc_text = None, None
        return True


def install_bad_request_log() -> None:
    """Idempotent: one filter on aiohttp's server logger, however many workers a process builds."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(existing, _BadRequestAsWarning) for existing in logger.filters):
        logger.addFilter(_BadRequestAsWarning())
