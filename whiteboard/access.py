"""The one place that decides who may open a board and with which role."""

from .models import ROLE_RANK, Membership, Role, ShareLink
from .protocol.messages import BoardNotFound, LoginRequired, NoAccess, Refusal

__all__ = ["BoardNotFound", "LoginRequired", "NoAccess", "Refusal", "board_role"]

SESSION_KEYS = "board_keys"


def board_role(board, user, keys=()):
    """Return the role `user` has on `board`, or raise the Refusal that applies.

    The one place that decides access, for the board page, the settings page,
    the WebSocket and the admin alike. A role comes from owning the board, a
    membership, a share link among `keys` (the share keys the browser's session
    holds), or the board being public; the best one applies. A guest (anonymous,
    with or without a session) is never a logged-in user.
    """
    if board is None:
        raise BoardNotFound()
    roles = []
    if user is not None and user.is_authenticated:
        if board.owner_id == user.pk:
            return Role.OWNER
        roles.append(Membership.objects.role_of(board, user))
    if board.is_public:
        roles.append(board.visitor_role)
    roles.append(ShareLink.objects.best_role(board, keys))
    role = max(filter(None, roles), key=ROLE_RANK.get, default=None)
    if role is not None:
        return role
    if user is not None and user.is_authenticated:
        raise NoAccess()
    raise LoginRequired()


def can_manage(board, user, keys=()):
    """Whether `user` may change the board's settings, members and links."""
    try:
        return board_role(board, user, keys) == Role.OWNER
    except Refusal:
        return False


def session_keys(session, board):
    """The share keys this session holds for `board` (at most one per board)."""
    held = session.get(SESSION_KEYS, {}) if session is not None else {}
    key = held.get(str(board.pk)) if isinstance(held, dict) else None
    return (key,) if isinstance(key, str) else ()


def remember_key(session, board, key):
    """Keep a share key in the session, so the board page and its socket see it."""
    held = dict(session.get(SESSION_KEYS, {}))
    held[str(board.pk)] = key
    session[SESSION_KEYS] = held


def request_role(request, board):
    """The role the browser behind `request` has on `board`, or the Refusal.

    The board page and every other HTTP view ask here, so a page never shows
    what its WebSocket would refuse.
    """
    keys = session_keys(request.session, board) if board is not None else ()
    return board_role(board, request.user, keys)
