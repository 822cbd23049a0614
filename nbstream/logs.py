"""Logging helpers: websockets' own log lines, with credentials taken out.

websockets logs each handshake's request line and headers, and every frame, at
DEBUG. A browser client has to put its token in the query string (``?token=...``),
scripts send ``Authorization: Bearer ...`` and some clients an ``auth`` message, so
nbstream gives websockets loggers of its own whose filter rewrites every secret
(:func:`nbstream.redact.redact_text`) before any handler sees the record.
``nbstream serve`` puts the same filter on its log handler, for every logger.
"""

from __future__ import annotations

import logging

from nbstream.redact import redact_text


class RedactTokens(logging.Filter):
    """Replaces secret values (tokens, passwords) in a record's formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
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
