"""The one place that decides who may open a board and with which role."""

from typing import NamedTuple

from .models import Role
from .protocol import CLOSE_FORBIDDEN, CLOSE_LOGIN_REQUIRED, CLOSE_NOT_FOUND


class Refusal(Exception):
    """Why a connection may not open a board; sent as one error frame, then closed."""

    code = "forbidden"
    close_code = CLOSE_FORBIDDEN
    message = "You do not have access to this board."

    def frame(self):
        return {"type": "error", "code": self.code, "message": self.message}


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


class BoardSettings(NamedTuple):
    """The fields of a Board that access depends on, as carried in board events."""

    owner_id: int | None
    is_public: bool
    visitor_role: str


def board_role(board, user):
    """Return the role `user` has on `board`, or raise the Refusal that applies.

    `board` is a Board or a BoardSettings. A guest (anonymous, with or without a
    session) is never a logged-in user.
    """
    if board is None:
        raise BoardNotFound()
    if user is not None and user.is_authenticated:
        if board.owner_id == user.pk:
            return Role.OWNER
        if board.is_public:
            return board.visitor_role
        raise NoAccess()
    if board.is_public:
        return board.visitor_role
    raise LoginRequired()


def request_role(request, board):
    """The role the browser behind `request` has on `board`, or the Refusal.

    The board page and every other HTTP view ask here, so a page never shows
    what its WebSocket would refuse.
    """
    return board_role(board, request.user)
