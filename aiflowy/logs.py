"""Log records that say which request they belong to, and (`AIFLOWY_LOG_JSON=true`) one JSON
object per line for log collectors.

`RequestIdFilter` adds `request_id` (the `X-Request-Id` the caller got, also stored with the
chat exchange) to every record; outside a request it is empty.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from aiflowy.requestcontext import current_request_id


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", "request_id"[, "exc_info"]}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "") or current_request_id(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
