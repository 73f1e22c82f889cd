"""The vocabulary of the board protocol: message types, limits, close codes, errors.

Pure Python; like the rest of `whiteboard.protocol`, no Django, no Channels.
Every refusal the server can answer with is one class of the error hierarchy
below; each knows its error `code` and, when it ends the connection, its
`close_code`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

PROTOCOL_VERSION = 1
# The version 1.1 additions this server supports, listed in `welcome`.
FEATURES = ("epoch", "follow", "image", "note", "viewport")

# Client message types. Dispatch is a closed allow-list: a client's `type` is only
# ever compared with these, never used as a handler or channel-layer event name.
ADD = "add"
UPDATE = "update"
DELETE = "delete"
CLEAR = "clear"
UNDO = "undo"
REDO = "redo"
CURSOR = "cursor"
DRAFT = "draft"
PING = "ping"
VIEWPORT = "viewport"  # version 1.1
OP_TYPES = frozenset({ADD, UPDATE, DELETE, CLEAR, UNDO, REDO})
CLIENT_TYPES = OP_TYPES | {CURSOR, DRAFT, PING, VIEWPORT}

# Server message types (DRAFT is both a client and a server type).
WELCOME = "welcome"
SNAPSHOT = "snapshot"
OPS = "ops"
ACK = "ack"
ERROR = "error"
PONG = "pong"
CURSORS = "cursors"
VIEWPORTS = "viewports"  # version 1.1
JOINED = "joined"
LEFT = "left"
BOARD = "board"
BYE = "bye"
SERVER_TYPES = frozenset(
    {
        WELCOME,
        SNAPSHOT,
        OPS,
        ACK,
        ERROR,
        PONG,
        CURSORS,
        VIEWPORTS,
        DRAFT,
        JOINED,
        LEFT,
        BOARD,
        BYE,
    }
)

# Close codes. 44xx (but 4408, 4413, 4429) are final: the client does not
# reconnect. The others are answered with a reconnect, backoff and `?since=`.
CLOSE_POLICY = 1008  # the 101st refused frame within a minute
CLOSE_TOO_BIG = 1009  # a client frame over max_frame_bytes
CLOSE_INTERNAL = 1011  # an unexpected server error
CLOSE_RESTART = 1012  # graceful stop, after `bye`
CLOSE_TRY_AGAIN = 1013  # channel layer or database unreachable
CLOSE_LOGIN_REQUIRED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_IDLE = 4408  # no data frame for 3 heartbeats
CLOSE_SLOW_READER = 4413  # the client does not read what it is sent
CLOSE_TOO_MANY_CONNECTIONS = 4429
RETRYABLE_CLOSES = frozenset(
    {
        CLOSE_POLICY,
        CLOSE_TOO_BIG,
        CLOSE_INTERNAL,
        CLOSE_RESTART,
        CLOSE_TRY_AGAIN,
        CLOSE_IDLE,
        CLOSE_SLOW_READER,
        CLOSE_TOO_MANY_CONNECTIONS,
    }
)


@dataclass(frozen=True)
class Limits:
    """Per-server limits, announced to every client in its welcome frame."""

    max_frame_bytes: int = 262144
    max_points: int = 5000
    max_elements: int = 50000
    ops_per_second: int = 50
    heartbeat_seconds: int = 20
    # The storage quota of one board: the bytes of its live elements.
    max_board_bytes: int = 50 * 1024 * 1024
    # Images (version 1.1): the largest upload, in bytes and in pixels (all of
    # an animation's frames counted); an asset's bytes count against
    # max_board_bytes too.
    max_asset_bytes: int = 10 * 1024 * 1024
    max_asset_pixels: int = 40_000_000

    def __post_init__(self) -> None:
        # Fail at startup on a bad setting rather than on some client's frame.
        for field in fields(self):
            value = getattr(self, field.name)
            if type(value) is not int or value < 1:
                raise ValueError(f"Limits.{field.name} must be an int >= 1: {value!r}")

    def as_dict(self) -> dict[str, int]:
        """The welcome frame's `limits` object."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


# --- Errors ---------------------------------------------------------------------


class ProtocolError(Exception):
    """A refused client frame or connection, answered with an `error` frame.

    `close_code` is None for a refusal after which the socket stays open, else
    the code the connection is closed with right after the error frame.
    """

    code: ClassVar[str] = "bad_message"
    close_code: ClassVar[int | None] = None
    message: str = "This message was refused."

    def __init__(self, message: str | None = None, cid: str | None = None):
        if message is not None:
            self.message = message
        super().__init__(self.message)
        self.cid = cid


class BadJson(ProtocolError):
    code = "bad_json"


class BadMessage(ProtocolError):
    code = "bad_message"


class UnknownType(ProtocolError):
    code = "unknown_type"


class Forbidden(ProtocolError):
    code = "forbidden"


class AccessChanged(Forbidden):
    """Refused at commit: the board's access rules changed since this connection's
    role was decided, and the author may no longer change the board."""

    message = "You no longer have permission to change this board."


class NotFound(ProtocolError):
    code = "not_found"


class Exists(ProtocolError):
    code = "exists"


class BoardFull(ProtocolError):
    code = "board_full"


class RateLimited(ProtocolError):
    code = "rate_limited"


class NothingToUndo(ProtocolError):
    code = "nothing_to_undo"


class NothingToRedo(ProtocolError):
    code = "nothing_to_redo"


class Refusal(ProtocolError):
    """Why a connection may not open (or keep) a board: an error frame, then 44xx."""

    code = "forbidden"
    close_code = CLOSE_FORBIDDEN
    message = "You do not have access to this board."


class LoginRequired(Refusal):
    code = "login_required"
    close_code = CLOSE_LOGIN_REQUIRED
    message = "This board is private: log in to open it."


class NoAccess(Refusal):
    pass


class BoardNotFound(Refusal):
    code = "not_found"
    close_code = CLOSE_NOT_FOUND
    message = "There is no board at this address."


class TooManyConnections(Refusal):
    code = "too_many_connections"
    close_code = CLOSE_TOO_MANY_CONNECTIONS
    message = (
        "Too many open connections from your address or browser: close another "
        "tab of this server, or try again later."
    )


# --- Messages -------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """A decoded frame whose `type` (and `cid`, for ops) has been checked."""

    type: str
    cid: str | None
    data: dict


@dataclass(frozen=True)
class AddOp:
    cid: str
    element: dict


@dataclass(frozen=True)
class UpdateOp:
    cid: str
    id: str
    set: dict


@dataclass(frozen=True)
class DeleteOp:
    cid: str
    ids: tuple[str, ...]


@dataclass(frozen=True)
class ClearOp:
    cid: str


@dataclass(frozen=True)
class UndoOp:
    cid: str


@dataclass(frozen=True)
class RedoOp:
    cid: str


@dataclass(frozen=True)
class Cursor:
    x: float
    y: float


@dataclass(frozen=True)
class Viewport:
    """The board rectangle a client shows (version 1.1, follow mode)."""

    x: float
    y: float
    w: float
    h: float
    follows: str | None = None  # the sid whose view this client follows ("follow")


@dataclass(frozen=True)
class Draft:
    element: dict | None


@dataclass(frozen=True)
class Ping:
    extra: dict


Op = AddOp | UpdateOp | DeleteOp | ClearOp | UndoOp | RedoOp
Message = Op | Cursor | Viewport | Draft | Ping
