"""Share links: opening `/b/<slug>/?key=...` keeps the grant in the session.

The key then leaves the address bar at once (a redirect to the bare board
address), so it is not kept in the browser's history, sent as a Referer, put
into the WebSocket URL or into a login page's `next`.
"""

from django.contrib import messages
from django.shortcuts import redirect

from . import access
from .models import ShareLink

KEY_PARAM = "key"


def take_share_key(request, board):
    """Answer a request carrying a share key with a redirect; None without one."""
    if KEY_PARAM not in request.GET:
        return None
    key = request.GET[KEY_PARAM]
    role = ShareLink.objects.best_role(board, [key]) if board is not None else None
    if role is not None:
        access.remember_key(request.session, board, key)
        messages.info(request, f"This link lets you open the board as {role}.")
    else:
        messages.error(
            request, "This share link does not work: it may have been revoked."
        )
    rest = request.GET.copy()
    del rest[KEY_PARAM]
    query = f"?{rest.urlencode()}" if rest else ""
    return redirect(f"{request.path}{query}")
