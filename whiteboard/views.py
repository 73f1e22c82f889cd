"""The server's own pages: home, the board page, board creation, guest rename.

What a user types arrives through the forms of whiteboard/forms.py; an invalid
form is answered with HTTP 400 and its message.

Every view that shows a board asks `access.request_role` first, so a page never
shows what its WebSocket would refuse.
"""

from urllib.parse import parse_qs, quote, urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from . import access, identity, ratelimit, selectors, services, sharing
from .forms import LINK_RE, BoardCreateForm, BoardOpenForm, GuestNameForm
from .models import Board


def home(request):
    boards = Board.objects.filter(is_public=True).order_by("-changed_at")[:50]
    mine = selectors.boards_of(request.user)[:50]
    return render(request, "whiteboard/home.html", {"boards": boards, "mine": mine})


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
        "guest_name": _chosen_name(request) if guest else "",
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


def _chosen_name(request):
    return identity.unmark_guest(request.session.get("guest_name", ""))


@require_POST
@ratelimit.limit("board_create")
def board_new(request):
    """Create a board from the home page's form and open it."""
    form = BoardCreateForm(request.POST)
    if not form.is_valid():
        return _home_refusal(request, form)
    is_public = True
    if request.user.is_authenticated:
        is_public = form.cleaned_data["visibility"] != "private"
    owner = request.user if request.user.is_authenticated else None
    board = services.board_create(
        title=form.cleaned_data["title"] or "Untitled board",
        owner=owner,
        is_public=is_public,
    )
    return redirect("whiteboard:board", slug=board.slug)


@require_POST
def board_open(request):
    """The "Open a board" form: accepts a pasted link or a slug.

    A POST, so that a pasted share link's key is never part of a URL of ours;
    it goes on to the board page's `?key=`, which takes it into the session.
    """
    form = BoardOpenForm(request.POST)
    if not form.is_valid():
        return _home_refusal(request, form)
    address, _, query = form.cleaned_data["board"].split("#")[0].partition("?")
    slug = LINK_RE.search(address.lower()).group(1)
    target = reverse("whiteboard:board", args=[slug])
    key = parse_qs(query).get(sharing.KEY_PARAM)
    return redirect(f"{target}?{urlencode({'key': key[-1]})}" if key else target)


def _home_refusal(request, form):
    """The home page again, HTTP 400, saying what was wrong with the form."""
    for errors in form.errors.values():
        messages.error(request, errors[0])
    response = home(request)
    response.status_code = 400
    return response


@require_POST
def guest_rename(request):
    """Set the guest's display name in the session (the socket reads it).

    The session holds the display name, already marked as a guest's.
    """
    if request.user.is_authenticated:
        return _rename_answer(request, "Logged-in users use their account name.", 400)
    form = GuestNameForm(request.POST)
    if not form.is_valid():
        return _rename_answer(request, form.errors["name"][0], 400)
    request.session["guest_name"] = form.display_name()
    return _rename_answer(request, form.cleaned_data["name"], 200)


def _rename_answer(request, text, status):
    """JSON for the page's fetch; a redirect back for a plain form post."""
    if request.headers.get("Accept", "").startswith("application/json"):
        key = "name" if status == 200 else "error"
        return JsonResponse({key: text}, status=status)
    back = request.POST.get("next", "")
    back = back if back.startswith("/b/") else reverse("whiteboard:home")
    if status != 200:
        context = {"message": text, "back": back}
        return render(request, "whiteboard/form_error.html", context, status=status)
    return redirect(back)
