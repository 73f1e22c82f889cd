"""Let daphne send the close codes the board protocol uses.

daphne closes a socket through autobahn's `sendClose`, which accepts only 1000
and 3000-4999 and raises for anything else, so `websocket.close` with 1008,
1009, 1011 or 1012 crashed the consumer and the client saw 1006. RFC 6455
(section 7.4.1) and the IANA registry define those codes for exactly these
cases, so they are sent with `sendCloseFrame`, the same frame writer without the
application-range check.

daphne's access log also gets share-link keys masked (see log_redaction).
"""

import sys

from autobahn.exception import Disconnected as PeerGone

from config.log_redaction import redact

SERVER_CLOSE_CODES = frozenset({1001, 1008, 1009, 1011, 1012, 1013})


__all__ = ["PeerGone", "install"]


def server_close(self, code=None):
    code = 1000 if code is None else code
    if code in SERVER_CLOSE_CODES:
        self.sendCloseFrame(code=code, isReply=False)
    else:
        self.sendClose(code=code)


def redacting(write_entry):
    """daphne's access log (stdout by default) prints each URL whole."""

    def write(self, host, date, request, *args, **kwargs):
        return write_entry(self, host, date, redact(request), *args, **kwargs)

    write.redacts = True
    return write


def install():
    """Patch daphne's protocol and access log, when running under daphne."""
    ws_protocol = sys.modules.get("daphne.ws_protocol")
    if ws_protocol is not None:
        ws_protocol.WebSocketProtocol.serverClose = server_close
    access = sys.modules.get("daphne.access")
    log = getattr(access, "AccessLogGenerator", None)
    if log is not None and not getattr(log.write_entry, "redacts", False):
        log.write_entry = redacting(log.write_entry)
