"""The history page: a board read-only at any seq, its ops newest first, and
every op that touched one element.

`history_page` is the page (history.html, static/whiteboard/js/history.js);
`history_json` answers what it asks, in pages bounded whatever the length of
the log. It never counts the board's ops: they are read newest first down the
(board, seq) index, a page at a time, and the state at a seq comes from
state.json (history_views.state_json, from the checkpoints).

The access check is the board page's (history_views.board_and_role, share keys
from the session only); a share key in these URLs is not looked at.
"""

from __future__ import annotations

from contextlib import closing, nullcontext
from datetime import UTC, datetime
from typing import Any

import orjson
from django.contrib.auth.views import redirect_to_login
from django.db import connections, transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_safe

from . import protocol as p
from . import timeline
from .history_views import Refused, board_and_role, seq_param
from .models import Board, Op

# Ops in one answer: `limit` defaults to PAGE and is cut to MAX_LIMIT.
PAGE = 50
MAX_LIMIT = 200
# An element's ops are looked for in at most this many seqs per request
# (one row per seq at most): the answer's next_before says where to go on.
SCAN_SEQS = 10_000
# Element ids named per op; an op touching more (a restore, an import) says
# how many were left out in "more".
MAX_IDS = 500

OP_FIELDS = ("seq", "last_seq", "kind", "by", "created_at", "entries")


# -- the page -------------------------------------------------------------------------


@require_safe
def history_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The board as it was at any seq, its ops, and (owners) restore."""
    try:
        board, role = board_and_role(request, slug)
    except Refused as refused:
        if refused.status == 401:
            # The bare path: a share key put in this URL goes no further.
            return redirect_to_login(request.path)
        if refused.status == 404:
            raise Http404(refused.message) from refused
        return render(
            request, "whiteboard/refused.html", {"reason": refused}, status=403
        )
    config = {
        "slug": board.slug,
        "title": board.title,
        "role": role,
        "seq": board.seq,
        "historyFrom": board.history_from,
        "canRestore": role == "owner",
        "historyUrl": reverse("whiteboard:history_json", args=[board.slug]),
        "stateUrl": reverse("whiteboard:state_json", args=[board.slug]),
        "restoreUrl": reverse("whiteboard:restore", args=[board.slug]),
        "boardUrl": reverse("whiteboard:board", args=[board.slug]),
    }
    context = {"board": board, "role": role, "config": config}
    response = render(request, "whiteboard/history.html", context)
    response["Cache-Control"] = "private, no-cache"
    return response


# -- the JSON -------------------------------------------------------------------------


@require_safe
def history_json(request: HttpRequest, slug: str) -> HttpResponse:
    """The board's ops, newest first.

    `?before=SEQ&limit=N`: {"ops", "next_before", "seq", "history_from"}: the
    ops whose first seq is below SEQ (all without it), at most N (50; 200 at
    most), "next_before" for the next page (null at the end), and the board's
    seq. Each op is {"seq", "last_seq", "kind", "by", "time", "ids"} (`op_json`).
    `?element=ID`: only the ops that touched that element, looked for in a
    bounded stretch of seqs per request; "next_before" says where to go on,
    even when this stretch had none. `?time=ISO`: {"seq", "history_from"}, the
    last seq committed at or before that time (history_from before the first
    op kept).
    """
    try:
        board, _ = board_and_role(request, slug)
        if "time" in request.GET:
            body: dict[str, Any] = {"seq": seq_at_time(board, request.GET["time"])}
        else:
            before = seq_param(request.GET.get("before"), board.seq + 1)
            limit = limit_param(request.GET.get("limit"))
            element = request.GET.get("element")
            if element is None:
                body = ops_page(board, before, limit)
            else:
                body = element_page(board, element_param(element), before, limit)
            body["seq"] = board.seq
    except Refused as refused:
        return refused.response()
    body["history_from"] = board.history_from
    response = JsonResponse(body)
    response["Cache-Control"] = "private, no-cache"
    return response


def limit_param(value: str | None) -> int:
    if value is None or value == "":
        return PAGE
    if not (value.isascii() and value.isdigit() and len(value) <= 9) or not int(value):
        raise Refused(400, "bad_limit", f"{value[:40]!r} is not a number of ops.")
    return min(int(value), MAX_LIMIT)


def element_param(value: str) -> str:
    if not p.ID_RE.fullmatch(value):
        raise Refused(400, "bad_element", f"{value[:80]!r} is not an element id.")
    return value


def time_param(value: str) -> datetime:
    try:
        moment = parse_datetime(value.strip())
    except ValueError:
        moment = None
    if moment is None:
        raise Refused(400, "bad_time", f"{value[:40]!r} is not an ISO date and time.")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    return moment


def ops_page(board: Board, before: int, limit: int) -> dict[str, Any]:
    """Up to `limit` ops below `before`, newest first: limit + 1 rows read down
    the (board, seq) index, the last only saying that more follow."""
    rows = list(
        Op.objects.filter(board=board, seq__lt=before)
        .order_by("-seq")
        .values_list(*OP_FIELDS)[: limit + 1]
    )
    more = len(rows) > limit
    ops = [op_json(row) for row in rows[:limit]]
    return {"ops": ops, "next_before": ops[-1]["seq"] if more else None}


def element_page(
    board: Board, element_id: str, before: int, limit: int
) -> dict[str, Any]:
    """Up to `limit` ops below `before` that touched `element_id`, newest first,
    from the seqs [before - SCAN_SEQS, before) at most.

    The database keeps only rows whose entries contain the id as a JSON string
    (a superset: the id may be another field's value, and SQLite's LIKE
    ignores case); each is then checked entry by entry. Ops have distinct
    first seqs, so the stretch holds at most SCAN_SEQS rows.
    """
    floor = max(board.history_from + 1, before - SCAN_SEQS)
    rows = (
        Op.objects.filter(
            board=board,
            seq__lt=before,
            seq__gte=floor,
            entries__contains=f'"{element_id}"',
        )
        .order_by("-seq")
        .values_list(*OP_FIELDS)
    )
    ops: list[dict[str, Any]] = []
    next_before = floor if floor > board.history_from + 1 else None
    # On PostgreSQL a server-side cursor, in a transaction so that it is not
    # WITH HOLD (materialised whole before the first row; selectors._streamed).
    postgresql = connections[rows.db].vendor == "postgresql"
    reading = transaction.atomic(using=rows.db) if postgresql else nullcontext()
    with reading, closing(rows.iterator(chunk_size=100)) as stream:
        for row in stream:
            entries = orjson.loads(row[5])
            if not any(touches(entry, element_id) for entry in entries):
                continue
            if len(ops) == limit:
                next_before = ops[-1]["seq"]
                break
            ops.append(op_json(row, entries))
    return {"ops": ops, "next_before": next_before, "element": element_id}


def touches(entry: dict[str, Any], element_id: str) -> bool:
    op = entry.get("op")
    if op == "add":
        return entry["element"].get("id") == element_id
    if op == "update":
        return entry.get("id") == element_id
    if op == "delete":
        return element_id in entry.get("ids", ())
    return False


def op_json(row: tuple, entries: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An op as the page lists it: "ids" are the elements its entries name
    (add: the element's, update: its id, delete: its ids), first mention first;
    a clear names none and says "all": true."""
    seq, last_seq, kind, by, created_at, text = row
    if entries is None:
        entries = orjson.loads(text)
    ids: dict[str, None] = {}
    cleared = False
    for entry in entries:
        op = entry.get("op")
        if op == "add":
            ids[entry["element"]["id"]] = None
        elif op == "update":
            ids[entry["id"]] = None
        elif op == "delete":
            ids.update(dict.fromkeys(entry["ids"]))
        elif op == "clear":
            cleared = True
    named = list(ids)
    answer: dict[str, Any] = {
        "seq": seq,
        "last_seq": last_seq,
        "kind": kind,
        "by": by,
        "time": created_at.astimezone(UTC).isoformat(),
        "ids": named[:MAX_IDS],
    }
    if len(named) > MAX_IDS:
        answer["more"] = len(named) - MAX_IDS
    if cleared:
        answer["all"] = True
    return answer


def seq_at_time(board: Board, value: str) -> int:
    """The last seq committed at or before the time `value`, or history_from
    (timeline.last_seq_at: a binary search, never a scan of the log)."""
    return timeline.last_seq_at(board, time_param(value))
