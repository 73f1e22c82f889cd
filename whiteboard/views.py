"""The server's own pages: home, the board page, board creation, guest rename.

Every view that shows a board asks `access.request_role` first, so a page never
shows what its WebSocket would refuse.
"""

import re
import unicodedata
from urllib.parse import parse_qs, quote, urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from . import access, ratelimit, selectors, services, sharing
from .models import Board

GUEST_NAME_MAX = 40
TITLE_MAX = 200
# A board link (".../b/<slug>/") or a bare slug, as typed into "Open a board".
LINK_RE = re.compile(r"(?:/b/)?([a-z0-9-]{1,64})/?$")


def home(request):
    boards = Board.objects.filter(is_public=True).order_by("-changed_at")[:50]
    mine = selectors.boards_of(request.user)[:50]
    return render(request, "whiteboard/home.html", {"boards": boards, "mine": mine})


def healthz(request):
    return JsonResponse({"status": "ok"})


@require_safe
def board_page(request, slug):
    """The drawing page of one board, after the same access check as its socket."""
    board = selectors.board_by_slug(slug)
    # A share link's key goes into the session before anything else, and out
    # of the address bar (and so out of the login page's `next`).
    landing = sharing.take_share_key(request, board)
    if landing is not None:
        return landing
    try:
        role = access.request_role(request, board)
    except access.LoginRequired:
        return redirect_to_login(request.get_full_path())
    except access.BoardNotFound as exc:
        raise Http404(exc.message) from exc
    except access.Refusal as exc:
        return render(request, "whiteboard/refused.html", {"reason": exc}, status=403)
    # No session is made for a guest here: a page view that stores nothing
    # writes no row. A guest's session starts with what it keeps (a chosen
    # name, a share link); until then its socket is named per connection.
    context = _board_context(request, board, role)
    return render(request, "whiteboard/board.html", context)


def _board_context(request, board, role):
    guest = not request.user.is_authenticated
    return {
        "board": board,
        "role": role,
        "guest": guest,
        "guest_name": request.session.get("guest_name", "") if guest else "",
        "config": {
            "slug": board.slug,
            "title": board.title,
            "wsPath": f"/ws/boards/{board.slug}/",
            "guest": guest,
            "role": role,
            "locked": board.locked,
            "renameUrl": reverse("whiteboard:guest_rename"),
            "loginUrl": f"{resolve_url(settings.LOGIN_URL)}?next={quote(request.path)}",
        },
    }


@require_POST
@ratelimit.limit("board_create")
def board_new(request):
    """Create a board from the home page's form and open it."""
    title = " ".join(request.POST.get("title", "").split())[:TITLE_MAX]
    is_public = True
    if request.user.is_authenticated:
        is_public = request.POST.get("visibility", "public") != "private"
    owner = request.user if request.user.is_authenticated else None
    board = services.board_create(
        title=title or "Untitled board", owner=owner, is_public=is_public
    )
    return redirect("whiteboard:board", slug=board.slug)


@require_POST
def board_open(request):
    """The "Open a board" form: accepts a pasted link or a slug.

    A POST, so that a pasted share link's key is never part of a URL of ours;
    it goes on to the board page's `?key=`, which takes it into the session.
    """
    text = request.POST.get("board", "").strip()
    address, _, query = text.split("#")[0].partition("?")
    match = LINK_RE.search(address.lower())
    if not match:
        messages.error(request, "That is not a board link or a board name.")
        return redirect("whiteboard:home")
    target = reverse("whiteboard:board", args=[match.group(1)])
    key = parse_qs(query).get(sharing.KEY_PARAM)
    return redirect(f"{target}?{urlencode({'key': key[-1]})}" if key else target)


def clean_guest_name(raw):
    """Strip control and format characters and outer spaces; 1 to 40 characters."""
    text = "".join(ch for ch in raw if unicodedata.category(ch)[0] != "C")
    text = " ".join(text.split())
    if not 1 <= len(text) <= GUEST_NAME_MAX:
        raise ValidationError(f"A name is 1 to {GUEST_NAME_MAX} characters.")
    return text


@require_POST
def guest_rename(request):
    """Set the guest's display name in the session (the socket reads it)."""
    if request.user.is_authenticated:
        return _rename_answer(request, "Logged-in users use their account name.", 400)
    try:
        name = clean_guest_name(request.POST.get("name", ""))
    except ValidationError as exc:
        return _rename_answer(request, exc.messages[0], 400)
    request.session["guest_name"] = name
    return _rename_answer(request, name, 200)


def _rename_answer(request, text, status):
    """JSON for the page's fetch; a redirect back for a plain form post."""
    if request.headers.get("Accept", "").startswith("application/json"):
        key = "name" if status == 200 else "error"
        return JsonResponse({key: text}, status=status)
    if status != 200:
        messages.error(request, text)
    back = request.POST.get("next", "")
    return redirect(back if back.startswith("/b/") else "whiteboard:home")
