"""Logging helpers: websockets' own log lines, with credentials taken out.

websockets logs each handshake's request line at DEBUG, query string included. A
browser client has to put its token there (``?token=...``), so nbstream gives
websockets loggers of its own whose filter rewrites ``token=<value>`` to
``token=[redacted]`` before any handler sees the record.
"""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"(?i)((?:^|[?&\s])token=)[^&\s]+")
_BEARER = re.compile(r"(?i)(authorization:\s*bearer\s+)\S+")


class RedactTokens(logging.Filter):
    """Replaces token values in a record's formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _BEARER.sub(r"\1[redacted]", _TOKEN.sub(r"\1[redacted]", message))
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def redacting(logger: logging.Logger) -> logging.Logger:
    """``logger``, made to take token values out of everything it logs."""
    if not any(isinstance(f, RedactTokens) for f in logger.filters):
        logger.addFilter(RedactTokens())
    return logger


def websockets_logger(name: str) -> logging.Logger:
    """A logger for websockets to use, named under ``nbstream``, that never shows tokens."""
    return redacting(logging.getLogger(name))
