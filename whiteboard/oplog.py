"""What the admin shows of a board's op log: which seqs an op holds, who made
it and which elements it touched, read from its stored `entries`.

`entries` is the JSON array the op's `ops` frame carried (docs/protocol.md):
one entry per seq, each {"op": "add" | "update" | "delete" | "clear", ...}. An
undo or a redo holds the entries it applied, so the same reading serves them.
Everything here returns plain text or HTML built with format_html: titles,
names and ids are the users' own and are always escaped.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from .models import Op

# How many element ids a changelist row names before "+N more".
SHOWN_IDS = 5
# Stands for every element: what a clear touched.
ALL = "all"
# The recent activity on a user's admin page.
RECENT_OPS = 20


def parse_entries(text: str) -> list[Any] | None:
    """The op's entries, or None when the stored text is not a JSON array."""
    try:
        entries = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return entries if isinstance(entries, list) else None


def touched_ids(text: str) -> list[str]:
    """The element ids the entries name, first mention first, each once; ALL
    for a clear. add names its element's id, update its id, delete its ids."""
    ids: dict[str, None] = {}
    for entry in parse_entries(text) or []:
        if not isinstance(entry, dict):
            continue
        op = entry.get("op")
        if op == "clear":
            named: list[Any] = [ALL]
        elif op == "add" and isinstance(entry.get("element"), dict):
            named = [entry["element"].get("id")]
        elif op == "update":
            named = [entry.get("id")]
        elif op == "delete" and isinstance(entry.get("ids"), list):
            named = entry["ids"]
        else:
            named = []
        for element_id in named:
            if element_id is not None:
                ids.setdefault(str(element_id), None)
    return list(ids)


def touched_html(text: str, shown: int | None = SHOWN_IDS) -> SafeString | str:
    """The first `shown` ids touched (all if None), each in <code>, then
    "+N more"; "-" if none."""
    ids = touched_ids(text)
    if not ids:
        return "-"
    html = format_html_join(", ", "<code>{}</code>", ((i,) for i in ids[:shown]))
    rest = len(ids) - len(ids[:shown])
    if rest > 0:
        return format_html("{} +{} more", html, rest)
    return html


def op_time(op: Op) -> str:
    """When the op was committed, to the second, in the site's time zone."""
    return timezone.localtime(op.created_at).strftime("%Y-%m-%d %H:%M:%S %Z")


def seq_range(op: Op) -> str:
    """ "12", or "12–15" for an op that holds several seqs."""
    if op.last_seq is None or op.last_seq == op.seq:
        return str(op.seq)
    return f"{op.seq}–{op.last_seq}"


def author_label(op: Op) -> str:
    """The name the op was stamped with, and the account behind it if any."""
    if op.author_id is None:
        return op.by
    return f"{op.by} ({op.author.get_username()})"


def pretty_entries(text: str) -> SafeString:
    """The entries indented, escaped, in a <pre>; the raw text if not JSON."""
    entries = parse_entries(text)
    if entries is not None:
        text = json.dumps(entries, indent=2, ensure_ascii=False)
    return format_html('<pre class="op-entries">{}</pre>', text)


# == links between the admin's pages ================================================


def board_link(board: Any) -> SafeString:
    url = reverse("admin:whiteboard_board_change", args=[board.pk])
    return format_html('<a href="{}">{}</a>', url, str(board))


def oplog_url(**filters: Any) -> str:
    query = "&".join(f"{key}={value}" for key, value in filters.items())
    url = reverse("admin:whiteboard_op_changelist")
    return f"{url}?{query}" if query else url


def board_oplog_link(board: Any) -> SafeString:
    """The op log filtered to `board`, with its number of seqs (the board's seq:
    no COUNT over its ops)."""
    url = oplog_url(board__id__exact=board.pk)
    seqs = board.seq
    count = "no ops yet" if not seqs else f"{seqs} seq{'s' if seqs != 1 else ''}"
    return format_html('<a href="{}">View the op log</a> ({})', url, count)


def recent_ops(user: Any, limit: int = RECENT_OPS) -> list[Op]:
    """The user's last `limit` ops on every board, newest first: one query, and
    none of the ops' entries or undo data read."""
    return list(
        Op.objects.filter(author=user)
        .select_related("board")
        .only(
            "id",
            "seq",
            "last_seq",
            "kind",
            "created_at",
            "board__id",
            "board__slug",
            "board__title",
        )
        .order_by("-pk")[:limit]
    )


def recent_activity_html(user: Any) -> SafeString | str:
    """A table of the user's recent ops (time, board, kind, seq) and a link to
    all of them in the op log."""
    if user is None or user.pk is None:
        return "-"
    ops = recent_ops(user)
    everything = format_html(
        '<p><a href="{}">All ops by this account in the op log</a></p>',
        oplog_url(author__id__exact=user.pk),
    )
    if not ops:
        return format_html("<p>No ops yet.</p>{}", everything)
    rows = format_html_join(
        "\n",
        '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>',
        (
            (
                reverse("admin:whiteboard_op_change", args=[op.pk]),
                op_time(op),
                board_link(op.board),
                op.kind,
                seq_range(op),
            )
            for op in ops
        ),
    )
    return format_html(
        '<table class="recent-activity">'
        "<caption>Last {} ops, on every board</caption>"
        "<thead><tr><th>time</th><th>board</th><th>kind</th><th>seq</th></tr></thead>"
        "<tbody>{}</tbody></table>{}",
        len(ops),
        rows,
        everything,
    )
