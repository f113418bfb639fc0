"""Secrets never reach a log line: a logging filter that masks API keys in every record the
servers and Django emit.

Why a filter as well as headers: browsers cannot set headers on a WebSocket, so `?api_key=`
stays accepted for old clients, and uvicorn logs the WebSocket's path with its query string at
INFO (`"WebSocket /ws/v1/aiBot/chat?api_key=af-…" [accepted]`) even with `--no-access-log`.
New browser clients send the key as a WebSocket subprotocol instead (`apikeys/auth.py`).

`install()` (run once at start-up by `aiflowy.apps`) puts the filter on the servers' and
Django's loggers and on every handler they and the root logger write through, so records that
propagate are masked too. Daphne's command-line access log (`-v 1`, `--access-log`) writes to
a stream, not through `logging`: run Daphne with `-v 0`, or uvicorn (docs/deploy.md).
"""

from __future__ import annotations

import logging
import re

MASK = "***"
_SECRETS = re.compile(
    r"(?P<query>\b(?:api_key|apikey|key|token|access_token)=)[^&\s\"'<>]+"
    r"|(?P<bearer>[Bb]earer\s+)[^\s\"',]+"
    r"|(?P<subprotocol>apikey\.)[^\s\"',]+"
    r"|(?P<key>af-)[A-Za-z0-9_\-]{8,}"
)
_MARKERS = ("=", "earer", "apikey.", "af-")

# The loggers whose records may carry a request line or an Authorization header.
SERVER_LOGGERS = (
    "",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "daphne",
    "django",
    "django.server",
    "django.request",
    "django.channels.server",
)


def redact(text: str) -> str:
    """`text` with API keys, `api_key=` (and similar) query values and Bearer tokens masked."""
    return _SECRETS.sub(lambda m: next(g for g in m.groups() if g is not None) + MASK, text)


class RedactSecrets(logging.Filter):
    """Masks secrets in a record's message and in its string arguments, which stay arguments:
    formatters such as uvicorn's access formatter read them one by one."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(marker in message for marker in _MARKERS) and redact(message) != message:
            if isinstance(record.args, tuple):
                record.args = tuple(_redact_arg(arg) for arg in record.args)
            elif isinstance(record.args, dict):
                record.args = {key: _redact_arg(arg) for key, arg in record.args.items()}
            if isinstance(record.msg, str):
                record.msg = redact(record.msg)
            if redact(record.getMessage()) != record.getMessage():  # a secret in an object
                record.msg, record.args = redact(message), None
        return True


def _redact_arg(arg: object) -> object:
    return redact(arg) if isinstance(arg, str) else arg


_FILTER = RedactSecrets()


def install() -> None:
    """Put the filter on the server loggers and all their handlers (idempotent)."""
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
