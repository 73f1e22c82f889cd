"""A board's past over HTTP: its state at a seq, restore, export and import.

Every view asks `access.request_role` first, as the board page does: share
keys come from the session, never from these URLs. JSON views answer errors
as {"error": code, "message": text} with the matching status.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST, require_safe

from . import access, portability, selectors, services, timeline, views
from .changes import NothingToRestore
from .models import Board


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def __reduce__(self) -> tuple[type[Refused], tuple[int, str, str]]:
        # Raised in the image worker process (assets.clean) and pickled back.
        return (Refused, (self.status, self.code, self.message))

    def response(self) -> JsonResponse:
        body = {"error": self.code, "message": self.message}
        return JsonResponse(body, status=self.status)


def board_and_role(request: HttpRequest, slug: str) -> tuple[Board, str]:
    """The board and the requester's role on it, or Refused (401/403/404)."""
    board = selectors.board_by_slug(slug)
    try:
        return board, access.request_role(request, board)
    except access.LoginRequired as exc:
        raise Refused(401, "login_required", exc.message) from exc
    except access.BoardNotFound as exc:
        raise Refused(404, "not_found", exc.message) from exc
    except access.Refusal as exc:
        raise Refused(403, "forbidden", exc.message) from exc


def seq_param(value: str | None, default: int) -> int:
    """A seq from the query string: digits only, else 400."""
    if value is None or value == "":
        return default
    if not (value.isascii() and value.isdigit() and len(value) <= 19):
        raise Refused(400, "bad_seq", f"{value[:40]!r} is not a seq.")
    return int(value)


@require_safe
def state_json(request: HttpRequest, slug: str) -> HttpResponse:
    """`{"seq": S, "elements": [...]}`: the live elements right after op S
    (`?at=S`; the current seq without it), in stacking order."""
    try:
        board, _ = board_and_role(request, slug)
        at = seq_param(request.GET.get("at"), board.seq)
        state = timeline.state_at(board, at)
    except Refused as refused:
        return refused.response()
    except timeline.OutOfHistory as exc:
        return Refused(404, "out_of_history", str(exc)).response()
    response = JsonResponse({"seq": at, "elements": state.live()})
    response["Cache-Control"] = "private, no-cache"
    return response


@require_POST
def restore(request: HttpRequest, slug: str) -> HttpResponse:
    """Owners put the board back as it was right after op `seq` (form field),
    as ordinary ops everyone on the board receives; undoable by its author."""
    wants_json = request.headers.get("Accept", "").startswith("application/json")
    try:
        board, role = board_and_role(request, slug)
        if role != "owner":
            raise Refused(403, "forbidden", "Only the board's owners can restore it.")
        seq = seq_param(request.POST.get("seq"), -1)
        if seq < 0:
            raise Refused(400, "bad_seq", "Say which seq to restore.")
        result = services.board_restore(
            board=board,
            user=request.user,
            seq=seq,
            limits=services.current_limits(),
        )
        outcome = result.outcomes[0]
        if outcome.error is not None:
            status = 409 if isinstance(outcome.error, NothingToRestore) else 403
            if outcome.error.code == "board_full":
                status = 413
            raise Refused(status, outcome.error.code, outcome.error.message)
    except timeline.OutOfHistory as exc:
        return answer(request, wants_json, Refused(404, "out_of_history", str(exc)))
    except Refused as refused:
        return answer(request, wants_json, refused)
    if wants_json:
        return JsonResponse({"restored_to": seq, "seq": outcome.last})
    messages.success(request, f"The board is back as it was after seq {seq}.")
    return redirect("whiteboard:board", slug=board.slug)


def answer(request: HttpRequest, wants_json: bool, refused: Refused) -> HttpResponse:
    if wants_json:
        return refused.response()
    context = {"message": refused.message, "back": request.path.rsplit("/", 1)[0]}
    return render(request, "whiteboard/form_error.html", context, status=refused.status)


@require_safe
def export_json(request: HttpRequest, slug: str) -> HttpResponse:
    """The board as a file of the export format (portability.py); viewers
    too. `?history=1` adds its log."""
    try:
        board, _ = board_and_role(request, slug)
        data = portability.export_bytes(
            board, history=request.GET.get("history") == "1"
        )
    except Refused as refused:
        return refused.response()
    except portability.ImportRefused as exc:
        return Refused(409, "history_dropped", exc.message).response()
    response = HttpResponse(data, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{board.slug}.json"'
    response["Cache-Control"] = "private, no-cache"
    return response


@require_POST
def import_board(request: HttpRequest) -> HttpResponse:
    """A new board, owned by the logged-in user, from an export file (the
    `file` field). A refused file changes nothing and says what is wrong."""
    wants_json = request.headers.get("Accept", "").startswith("application/json")
    if not request.user.is_authenticated:
        if wants_json:
            message = "Log in to import a board."
            return Refused(401, "login_required", message).response()
        return redirect_to_login(request.get_full_path())
    upload = request.FILES.get("file")
    try:
        if upload is None:
            raise portability.ImportRefused("Choose a board file to import.")
        if upload.size > settings.WHITEBOARD_MAX_IMPORT_BYTES:
            raise portability.ImportRefused(
                f"The file has {upload.size} bytes; at most "
                f"{settings.WHITEBOARD_MAX_IMPORT_BYTES} are taken."
            )
        checked = portability.read(upload.read(), services.current_limits())
        board = portability.import_board(checked, owner=request.user)
    except portability.ImportRefused as exc:
        if wants_json:
            return Refused(400, "bad_file", exc.message).response()
        messages.error(request, exc.message)
        response = views.home(request)
        response.status_code = 400
        return response
    if wants_json:
        return JsonResponse({"slug": board.slug, "seq": board.seq}, status=201)
    return redirect("whiteboard:board", slug=board.slug)
