"""Keep share-link keys out of every log line.

A board's share link carries its key in the query string (`?key=...`), and
both daphne's access log and runserver's request log print the full URL; a
log is read by more people than the board's owner means to share it with.
"""

import logging
import re

SECRET_PARAMS = re.compile(r"([?&;]key=)[^&;#\s\"']*", re.IGNORECASE)
REDACTED = r"\1[redacted]"


def redact(text):
    return SECRET_PARAMS.sub(REDACTED, text)


class RedactSecrets(logging.Filter):
    """A handler filter: the formatted message with secret parameters masked."""

    def filter(self, record):
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
