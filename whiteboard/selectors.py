"""Reads: board state for a joining client, replays, and who is on a board.

Frames are assembled from stored JSON text, so a large board is served without
decoding and re-encoding every element.
"""

import json

from django.db.models import Q

from .models import Board, Element, Op, Presence
from .protocol import frames
from .protocol.frames import element_text, encode

FRAME_BYTES = 256 * 1024


def board_by_slug(slug):
    return Board.objects.select_related("owner").filter(slug=slug).first()


def board_info(board, role):
    return {
        "slug": board.slug,
        "title": board.title,
        "role": role,
        "locked": board.locked,
    }


def _chunks(items, budget):
    """Split encoded items into runs of at most `budget` characters (one at least)."""
    chunk, size = [], 0
    for item in items:
        if chunk and size + len(item) > budget:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += len(item) + 1
    yield chunk


def snapshot_frames(board, seq, *, budget=FRAME_BYTES):
    """The board's live elements in stacking order, as `snapshot` frames."""
    rows = (
        Element.objects.live()
        .filter(board=board)
        .order_by("z")
        .values_list("body", "v")
        .iterator(chunk_size=2000)
    )
    items = (element_text(body, v) for body, v in rows)
    chunks = list(_chunks(items, budget))
    head = f'{{"type":"snapshot","seq":{seq},"elements":['
    return [
        head
        + ",".join(chunk)
        + f'],"more":{"true" if i < len(chunks) - 1 else "false"}}}'
        for i, chunk in enumerate(chunks)
    ]


def op_entries_after(board, after, upto):
    """Encoded op entries with after < seq <= upto in seq order, and their count."""
    rows = (
        Op.objects.filter(board=board, last_seq__gt=after, seq__lte=upto)
        .order_by("seq")
        .values_list("seq", "last_seq", "entries")
    )
    items, count = [], 0
    for first, last, text in rows:
        count += min(last, upto) - max(first - 1, after)
        if first > after and last <= upto:
            items.append(text[1:-1])
        else:
            entries = json.loads(text)
            items.extend(encode(e) for e in entries if after < e["seq"] <= upto)
    return items, count


def ops_frames(items, *, budget=FRAME_BYTES):
    chunks = _chunks(items, budget)
    return ['{"type":"ops","ops":[' + ",".join(chunk) + "]}" for chunk in chunks]


def catch_up_frames(board, since, seq, *, max_replay):
    """Replay frames for a client that has applied `since`, or None for a snapshot."""
    if since is None or since > seq or seq - since > max_replay:
        return None
    items, count = op_entries_after(board, since, seq)
    if count != seq - since:
        return None  # part of the log is missing: only a snapshot is complete
    return ops_frames(items)


def presence_users(board, *, exclude_sid, fresh_after):
    rows = Presence.objects.on_board(board, fresh_after=fresh_after).exclude(
        sid=exclude_sid
    )
    return [
        {"sid": sid, "name": name, "color": color}
        for sid, name, color in rows.values_list("sid", "name", "color")
    ]


def ops_gap(*, board_id, after, upto):
    """The ops with after < seq <= upto as `ops` frames (see frames.FRAME_BUDGET)."""
    rows = (
        Op.objects.filter(board_id=board_id, last_seq__gt=after, seq__lte=upto)
        .order_by("seq")
        .values_list("seq", "last_seq", "entries")
    )
    pieces = []
    for first, last, text in rows:
        if first > after and last <= upto:
            pieces.extend(frames.entries_of(first, last, text))
        else:
            entries = [e for e in json.loads(text) if after < e["seq"] <= upto]
            pieces.extend(
                frames.Entries(e["seq"], e["seq"], encode(e)) for e in entries
            )
    return list(frames.ops_frames(pieces))


def board_seqs(*, board_ids):
    """The current seq of each of these boards, by id."""
    return dict(Board.objects.filter(pk__in=board_ids).values_list("pk", "seq"))


def boards_of(user):
    """The boards `user` owns or is a member of, most recently changed first."""
    if user is None or not user.is_authenticated:
        return Board.objects.none()
    mine = Q(owner=user) | Q(members__user=user)
    return Board.objects.filter(mine).distinct().order_by("-changed_at")
