"""One JSON object per log line, for log collectors (WHITEBOARD_LOG_FORMAT=json).

Every line has `time` (UTC, ISO 8601 with milliseconds), `level`, `logger`,
`message` and `pid`; the fields of FIELDS when the code logging it gave them
(`logger.info(..., extra=log_fields(...))`); and `exception`, the whole
traceback as one string, when there is one. Share keys are masked everywhere,
as in the plain format (config/log_redaction.py).
"""

import json
import logging
from datetime import UTC, datetime

from config.log_redaction import redact

# What a line may carry besides the basics: the board's slug, the
# connection's sid, the user's id (None for a guest), the close code and who
# closed (server or client), the protocol error code, the op's cid; and on
# daphne's access lines the client's address, the request and its status.
FIELDS = (
    *("board", "sid", "user", "close_code", "by", "error_code", "cid"),
    *("client", "request", "status"),
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "pid": record.process,
        }
        for name in FIELDS:
            if name in record.__dict__:
                value = record.__dict__[name]
                line[name] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exception"] = redact(record.exc_text)
        if record.stack_info:
            line["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def log_fields(**fields: object) -> dict[str, object]:
    """`extra=` for a log call: only the fields JSON lines carry, Nones dropped
    except `user` (None says "a guest")."""
    return {
        name: value
        for name, value in fields.items()
        if name in FIELDS and (value is not None or name == "user")
    }
