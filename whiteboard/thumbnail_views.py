"""A board's thumbnail: the PNG stored by whiteboard/thumbnails.py, never drawn
on the request path (a board without one yet gets a blank placeholder).

The same access check as the board page (`access.request_role`, with the share
keys the session already holds): a thumbnail shows what the board shows.
"""

import zlib

from django.http import Http404, HttpResponse
from django.utils.cache import get_conditional_response
from django.views.decorators.http import require_safe

from . import access, selectors, thumbnails
from .models import Thumbnail

CACHE_CONTROL = "private, max-age=60"


@require_safe
def board_thumbnail(request, slug):
    board = selectors.board_by_slug(slug)
    try:
        access.request_role(request, board)
    except access.BoardNotFound as exc:
        raise Http404(exc.message) from exc
    except access.Refusal:
        # No login redirect for an image: nobody follows it to a login page.
        return refused()
    return thumbnail_response(request, board.pk)


def thumbnail_response(request, board_id):
    """The stored PNG (or the placeholder) with its ETag: the seq it shows and
    a checksum, which tells two renders of one seq apart (a board whose history
    was replaced counts its seqs again)."""
    row = Thumbnail.objects.filter(board_id=board_id).values_list("seq", "png").first()
    if row is None:
        png = thumbnails.placeholder()
        etag = '"placeholder"'
    else:
        seq, png = row[0], bytes(row[1])
        etag = f'"{seq}-{zlib.crc32(png):08x}"'
    response = HttpResponse(png, content_type="image/png")
    response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL
    response["X-Content-Type-Options"] = "nosniff"
    return get_conditional_response(request, etag=etag, response=response)


def refused():
    response = HttpResponse(
        "No access to this board.", status=403, content_type="text/plain"
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response
