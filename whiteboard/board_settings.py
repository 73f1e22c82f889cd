"""The board settings page: owners manage title, visibility, members and links.

Every view asks `access.can_manage` before it reads anything else of the
board; only owners get past it. Each change goes through a service, which tells
the board's open sockets, so it applies to them at once.
"""

from functools import wraps

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from . import access, selectors, services
from .forms import (
    BoardDeleteForm,
    BoardSettingsForm,
    MemberForm,
    MemberRoleForm,
    ShareLinkForm,
)
from .models import Role

NEW_LINK = "new_share_link"
REFUSED = "whiteboard/refused.html"


class NotOwner(Exception):
    def __init__(self, response):
        self.response = response


def owned_board(request, slug):
    """The board if the request comes from one of its owners; else NotOwner.

    A share link never makes anyone an owner, so the session's keys are not
    asked: only the account counts.
    """
    board = selectors.board_by_slug(slug)
    if board is None:
        raise Http404(access.BoardNotFound.message)
    if access.can_manage(board, request.user):
        return board
    if not request.user.is_authenticated:
        raise NotOwner(redirect_to_login(request.path))
    reason = access.Refusal("Only the board's owners can change its settings.")
    raise NotOwner(render(request, REFUSED, {"reason": reason}, status=403))


def owners_only(view):
    @wraps(view)
    def wrapper(request, slug, *args, **kwargs):
        try:
            board = owned_board(request, slug)
        except NotOwner as refused:
            return refused.response
        return view(request, board, *args, **kwargs)

    return wrapper


def settings_url(board):
    return reverse("whiteboard:board_settings", args=[board.slug])


@owners_only
def board_settings(request, board):
    """Show the settings, or save the general ones (title, visibility, lock)."""
    form = BoardSettingsForm(request.POST or None, instance=board)
    if request.method == "POST" and form.is_valid():
        services.board_update_settings(
            board=form.save(commit=False), fields=form.changed_data
        )
        messages.success(request, "Settings saved.")
        return redirect(settings_url(board))
    status = 400 if form.is_bound else 200
    return render_settings(request, board, status=status, form=form)


def render_settings(request, board, status=400, **forms):
    """The page, with any invalid form given showing its errors."""
    link_key = request.session.pop(NEW_LINK, None)
    new_link = None
    if link_key and link_key["board"] == board.pk:
        path = reverse("whiteboard:board", args=[board.slug])
        new_link = request.build_absolute_uri(f"{path}?key={link_key['key']}")
    context = {
        "board": board,
        "form": forms.get("form") or BoardSettingsForm(instance=board),
        "member_form": forms.get("member_form") or MemberForm(board=board),
        "link_form": forms.get("link_form") or ShareLinkForm(),
        "members": board.members.select_related("user"),
        "links": board.share_links.active(),
        "new_link": new_link,
        "roles": Role.choices,
    }
    return render(request, "whiteboard/settings.html", context, status=status)


@require_POST
@owners_only
def member_add(request, board):
    form = MemberForm(request.POST, board=board)
    if not form.is_valid():
        return render_settings(request, board, member_form=form)
    user = form.cleaned_data["user"]
    services.member_set(board=board, user=user, role=form.cleaned_data["role"])
    messages.success(
        request, f"{user.get_username()} is now {form.cleaned_data['role']}."
    )
    return redirect(settings_url(board))


@require_POST
@owners_only
def member_change(request, board, member_id):
    """Change a member's role, or remove them (`role` = "remove")."""
    membership = get_object_or_404(board.members, pk=member_id)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, form.errors["role"][0])
        return render_settings(request, board)
    role = form.cleaned_data["role"]
    name = membership.user.get_username()
    if role == "remove":
        services.member_remove(membership=membership)
        messages.success(request, f"{name} is no longer a member.")
    else:
        services.member_set(board=board, user=membership.user, role=role)
        messages.success(request, f"{name} is now {role}.")
    return redirect(settings_url(board))


@require_POST
@owners_only
def link_create(request, board):
    form = ShareLinkForm(request.POST)
    if not form.is_valid():
        return render_settings(request, board, link_form=form)
    link, key = services.share_link_create(
        board=board,
        role=form.cleaned_data["role"],
        label=form.cleaned_data["label"],
        created_by=request.user,
    )
    # Shown once, on the next page: only a digest of the key is stored.
    request.session[NEW_LINK] = {"board": board.pk, "key": key}
    return redirect(settings_url(board))


@require_POST
@owners_only
def link_revoke(request, board, link_id):
    link = get_object_or_404(board.share_links, pk=link_id)
    services.share_link_revoke(link=link)
    messages.success(request, f"The {link.role} link {link.hint}… no longer works.")
    return redirect(settings_url(board))


@require_POST
@owners_only
def board_delete(request, board):
    form = BoardDeleteForm(request.POST, board=board)
    if not form.is_valid():
        messages.error(request, form.errors["confirm"][0])
        return render_settings(request, board)
    title = board.title
    services.board_delete(board=board)
    messages.success(request, f"The board {title!r} was deleted.")
    return redirect("whiteboard:home")
