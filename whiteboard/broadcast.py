"""Channel-layer events sent to a board's group.

Event types are fixed here, never taken from a client, and each maps to one
connection method through HANDLERS, a closed allow-list. A process receives each
event once, on its board hub's channel, and hands it to its local connections.
"""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from .models import board_group
from .protocol.frames import OpsFrame

OPS = "board.ops"
VOLATILE = "board.volatile"
JOINED = "board.joined"
LEFT = "board.left"
META = "board.meta"
GONE = "board.gone"
KICK = "board.kick"
RESET = "board.reset"

# The connection method that handles each event: a closed allow-list.
HANDLERS = {
    OPS: "board_ops",
    VOLATILE: "board_volatile",
    JOINED: "board_joined",
    LEFT: "board_left",
    META: "board_meta",
    GONE: "board_gone",
    KICK: "board_kick",
    RESET: "board_reset",
}


def ops_event(frame: OpsFrame) -> dict:
    # The frame is encoded once per batch; receivers forward the text as is.
    return {"type": OPS, "first": frame.first, "last": frame.last, "text": frame.text}


def meta_event(board):
    """The board's settings or access rules changed.

    Each connection shows the new title and lock state and re-decides its own
    role (see `services.connection_recheck`).
    """
    return {"type": META, "title": board.title, "locked": board.locked}


def gone_event():
    return {"type": GONE}


def kick_event():
    return {"type": KICK}


def reset_event():
    """The board's history was replaced (a new epoch): its connections start
    again, and each process's room forgets the old seqs."""
    return {"type": RESET}


def publish(slug, event):
    """Send an event to a board's group from synchronous code (admin, commands).

    Every event names its board: one channel per process receives the events of
    all its boards.
    """
    event = {**event, "board": slug}
    async_to_sync(get_channel_layer().group_send)(board_group(slug), event)


def publish_ops(slug: str, frames: list[OpsFrame]) -> None:
    """One ops event per frame, in seq order (a batch may need several)."""
    for frame in frames:
        publish(slug, ops_event(frame))


def publish_board(board):
    publish(board.slug, meta_event(board))


USER_ENDED = "user.ended"


def user_group(user_id):
    """The channel-layer group of one account's open sockets, on every process."""
    return f"user.{user_id}"


def end_user_sessions(*, user_id, message):
    """Close every open socket of this account (4401, with `message`), everywhere.

    Sent after a logout, a password change or a deactivated or deleted account;
    a process that misses it still finds out at the socket's next heartbeat,
    when the session's auth hash is checked again.
    """
    event = {"type": USER_ENDED, "user": user_id, "message": message}
    async_to_sync(get_channel_layer().group_send)(user_group(user_id), event)
