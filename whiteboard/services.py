"""Writes: creating boards, joining and leaving them, committing ops.

Every function here is synchronous and runs in a worker thread when called from
a consumer; each write is one transaction.
"""

import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.text import slugify

from . import broadcast, metrics, selectors, timeline
from .access import board_role, session_keys
from .changes import OpRequest, Restore
from .commits import (  # noqa: F401 (the commit API, with the other writes)
    CommitResult,
    needs_own_transaction,
    ops_commit,
    ops_commit_boards,
)
from .history import in_chunks
from .identity import Author, actor_key, color_for, guest_name, user_display_name
from .models import Board, Membership, Presence, ShareLink, new_epoch, random_slug
from .protocol import Limits, frames


@dataclass
class Joined:
    """A newly admitted connection: its `welcome` frame, then its state, a
    snapshot at `seq` or, when `replay_after` is not None, the ops after it."""

    welcome: str
    seq: int
    board: dict
    users: list[dict]
    replay_after: int | None


_limits: tuple[object, Limits] | None = None


def current_limits() -> Limits:
    """The protocol limits from the settings (validated when they load).

    Built once per value of the setting: every connect asks for them, and a
    test that overrides the setting assigns a new dict.
    """
    global _limits
    source = settings.WHITEBOARD_LIMITS
    if _limits is None or _limits[0] is not source:
        _limits = (source, Limits(**source))
    return _limits[1]


def new_slug(*, title, is_public):
    """A fresh address: readable and unguessable for a public board, only
    unguessable for a private one, whose title must not leak through its link."""
    if not is_public:
        return random_slug()
    readable = slugify(title)[:40].strip("-")
    return f"{readable}-{random_slug()[:8]}" if readable else random_slug()


def board_create(*, title, slug=None, owner=None, is_public=True):
    """Create a board; without a `slug`, one is made up (see `new_slug`)."""
    if slug is None:
        slug = new_slug(title=title, is_public=is_public)
    board = Board(slug=slug, title=title or slug, owner=owner, is_public=is_public)
    board.full_clean()
    board.save()
    return board


def connection_author(*, user, session, sid, role):
    """The name, colour and history key of a connection, from its login or session."""
    if user is not None and user.is_authenticated:
        actor = actor_key(user_id=user.pk)
        author = Author(sid, user_display_name(user), actor, user.pk, role)
        return author, color_for(actor)
    session_key = getattr(session, "session_key", None)
    actor = actor_key(session_key=session_key, sid=sid)
    stored = session.get("guest_name") if session_key else None
    name = (stored or "").strip()[:150] or guest_name(actor)
    return Author(sid, name, actor, None, role), color_for(actor)


def presence_cutoff(heartbeat_seconds):
    return timezone.now() - timedelta(seconds=3 * heartbeat_seconds)


@dataclass
class Admission:
    """An admitted connection. `access_version` is the board's when its role was
    decided; its ops carry it, so that a commit re-checks a stale role."""

    board: Board
    role: str
    author: Author
    color: str
    keys: tuple
    access_version: int


def board_admit(*, slug, user, session, sid) -> Admission:
    """Decide access (raising Refusal) before the connection sees any board data."""
    # The version is read (with the board) before the role is decided: a change
    # in between leaves it stale, and the next commit re-decides.
    board = selectors.board_by_slug(slug)
    keys = session_keys(session, board) if board is not None else ()
    role = board_role(board, user, keys)
    author, color = connection_author(user=user, session=session, sid=sid, role=role)
    return Admission(board, role, author, color, keys, board.access_version)


def connection_recheck(*, board_id, sid, user, keys) -> tuple[str, int]:
    """Re-decide an open connection's role after the board's access changed.

    Returns the role (also written to its presence row, which the admin shows)
    and the access version it was decided at, or raises the Refusal that now
    applies.
    """
    board = Board.objects.filter(pk=board_id).first()
    role = board_role(board, user, keys)
    Presence.objects.filter(sid=sid).exclude(role=role).update(role=role)
    return role, board.access_version


def board_join(
    *,
    admission: "Admission",
    channel_name: str,
    server: str,
    since: int | None,
    limits: Limits,
    max_replay: int,
    epoch: str | None = None,
) -> Joined:
    """Register the connection's presence and decide what it must receive first.

    The state itself is read afterwards, page by page (`selectors.snapshot_page`
    or `selectors.replay_page` from `replay_after`), so that a big board is
    never held whole in memory.
    """
    board, author = admission.board, admission.author
    Presence.objects.create(
        board=board,
        sid=author.sid,
        name=author.by,
        color=admission.color,
        user_id=author.user_id,
        role=admission.role,
        server=server,
        channel_name=channel_name,
        seen_at=timezone.now(),
    )
    users = selectors.presence_users(
        board,
        exclude_sid=author.sid,
        fresh_after=presence_cutoff(limits.heartbeat_seconds),
    )
    # The seq is read before the elements: anything committed in between shows
    # up in both, and clients ignore an op whose seq is not above the element's v.
    board.refresh_from_db(fields=["seq", "title", "locked", "epoch"])
    if epoch is not None and epoch != board.epoch:
        since = None  # another history than the client's: a snapshot
    replay_after = selectors.replay_from(
        board_id=board.pk, since=since, seq=board.seq, max_replay=max_replay
    )
    info = frames.board_info(
        slug=board.slug,
        title=board.title,
        role=admission.role,
        locked=board.locked,
        epoch=board.epoch,
    )
    you = {"sid": author.sid, "name": author.by, "color": admission.color}
    welcome = frames.welcome(
        board=info, you=you, users=users, seq=board.seq, limits=limits
    )
    return Joined(welcome, board.seq, info, users, replay_after)


def presence_leave(*, sid):
    Presence.objects.filter(sid=sid).delete()


# Stale presence rows deleted (and announced `left`) per heartbeat, at most.
REAP_LIMIT = 1000


@dataclass
class PresenceCheck:
    """What one heartbeat's presence upkeep found.

    `missing`: this process's connections whose row is gone, because another
    process reaped it while this one could not reach the database; they are
    written again with `presence_restore` and announced `joined`.
    `reaped`: (sid, board slug) of other processes' rows that went stale (a
    process killed, or cut off from the database) and were deleted here; each
    is announced `left`, since a client that joined before they went stale
    was listed them in its welcome.
    """

    missing: list[str]
    reaped: list[tuple[str, str]]


def presence_touch(*, server, sids, heartbeat_seconds) -> PresenceCheck:
    """Mark this process's connections as still open; reap the stale rows."""
    now = timezone.now()
    touched = 0
    for chunk in in_chunks(sids):
        rows = Presence.objects.filter(server=server, sid__in=chunk)
        touched += rows.update(seen_at=now)
    missing: list[str] = []
    if touched < len(sids):
        found: set[str] = set()
        for chunk in in_chunks(sids):
            rows = Presence.objects.filter(sid__in=chunk)
            found.update(rows.values_list("sid", flat=True))
        missing = [sid for sid in sids if sid not in found]
    before = now - timedelta(seconds=3 * heartbeat_seconds)
    return PresenceCheck(missing, presence_reap(server=server, before=before))


def presence_reap(*, server, before, limit=REAP_LIMIT) -> list[tuple[str, str]]:
    """Delete other processes' rows not refreshed since `before`.

    Two processes reaping at once each take the rows the other has not locked
    (PostgreSQL's SKIP LOCKED; SQLite runs one write transaction at a time),
    so each row is announced once. A process's own rows are its own business:
    it refreshes them, or finds them missing and writes them again.
    """
    with transaction.atomic():
        stale = list(
            Presence.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(seen_at__lt=before)
            .exclude(server=server)
            .values_list("pk", "sid", "board__slug")[:limit]
        )
        Presence.objects.filter(pk__in=[pk for pk, _, _ in stale]).delete()
    return [(sid, slug) for _, sid, slug in stale]


def presence_restore(*, server, channel_name, rows: list[dict]) -> list[str]:
    """Write again the rows of open connections that were reaped (see
    PresenceCheck); each dict holds board_id, sid, name, color, user_id, role.
    Returns the sids written."""
    # A row also goes with its board or account (on delete cascade): those
    # connections are being closed by the board's `gone` event or the login
    # check, and get no row back.
    boards = set(
        Board.objects.filter(pk__in={r["board_id"] for r in rows}).values_list(
            "pk", flat=True
        )
    )
    users = set(
        get_user_model()
        .objects.filter(pk__in={r["user_id"] for r in rows} - {None})
        .values_list("pk", flat=True)
    )
    users.add(None)  # a guest
    now = timezone.now()
    kept = [
        Presence(server=server, channel_name=channel_name, seen_at=now, **row)
        for row in rows
        if row["board_id"] in boards and row["user_id"] in users
    ]
    Presence.objects.bulk_create(kept, ignore_conflicts=True)
    return [row.sid for row in kept]


def board_clear(*, board, user, limits):
    """A staff clear from the admin: an op with no sid, broadcast like any other."""
    author = Author(
        sid=None,
        by=user_display_name(user),
        actor=actor_key(user_id=user.pk),
        user_id=user.pk,
        role="owner",
        moderator=True,
    )
    request = OpRequest(cid=f"admin-{uuid.uuid4().hex}", kind="clear", author=author)
    with transaction.atomic():
        result = ops_commit(board_id=board.pk, requests=[request], limits=limits)
        # robust: the clear is committed whatever the channel layer does; open
        # connections that miss it fill the gap from the log.
        transaction.on_commit(
            lambda: published(board.slug, [request], result), robust=True
        )
    return result


def board_restore(*, board, user, seq, limits, role="owner"):
    """Put the board back as it was right after op `seq`, as ordinary ops by
    `user` (sid null), broadcast to every process like any commit and undoable
    by that user as one entry. Raises timeline.OutOfHistory for a seq the
    board cannot give; the outcome's error says why nothing was restored."""
    board.refresh_from_db(fields=["seq", "history_from"])
    target = timeline.state_at(board, seq)
    author = Author(
        sid=None,
        by=user_display_name(user),
        actor=actor_key(user_id=user.pk),
        user_id=user.pk,
        role=role,
    )
    request = OpRequest(
        cid=f"restore-{uuid.uuid4().hex}",
        kind="restore",
        author=author,
        op=Restore(seq=seq, elements=target.live()),
    )
    with transaction.atomic():
        result = ops_commit(board_id=board.pk, requests=[request], limits=limits)
        transaction.on_commit(
            lambda: published(board.slug, [request], result), robust=True
        )
    return result


def published(slug, requests, result):
    """After the commit of ops made outside a socket: count them, send them,
    and store the board's checkpoint if it is due."""
    metrics.committed(
        request.kind
        for request, outcome in zip(requests, result.outcomes, strict=True)
        if outcome.first is not None
    )
    broadcast.publish_ops(slug, result.frames)
    if result.frames:
        board_id = Board.objects.filter(slug=slug).values_list("pk", flat=True).first()
        if board_id is not None:
            timeline.ensure_checkpoint(board_id)


def board_new_epoch(*, board):
    """The board's history was replaced (an import over it, a backup restored):
    a new epoch, and its open sockets start again (bye + 1012), so that each
    client resumes into a snapshot of the history it now has."""
    board.epoch = new_epoch()
    Board.objects.filter(pk=board.pk).update(epoch=board.epoch)
    transaction.on_commit(
        lambda: broadcast.publish(board.slug, broadcast.reset_event()), robust=True
    )


def board_set_locked(*, board, locked):
    board.locked = locked
    board_update_settings(board=board, fields=["locked"])


def board_update_settings(*, board, fields):
    """Save the named settings of `board` and tell its open connections.

    Only these columns are written: `seq` and `live_elements` belong to the op
    engine and may have changed since `board` was read.
    """
    if not fields:
        return
    with transaction.atomic():
        board.save(update_fields=[*fields, "changed_at"])
        board_access_changed(board=board)


def board_delete(*, board):
    """Delete a board with everything on it; its open connections close with 4404."""
    slug = board.slug
    board.delete()
    # robust: the board is gone whatever the channel layer does; a connection
    # that misses the event is refused at its next commit or heartbeat.
    transaction.on_commit(
        lambda: broadcast.publish(slug, broadcast.gone_event()), robust=True
    )


def board_disconnect_all(*, board):
    """A moderator's kick: every open connection gets `forbidden` and 4403."""
    broadcast.publish(board.slug, broadcast.kick_event())


def board_access_changed(*, board: Board) -> None:
    """Call with every change of who may do what on `board`, in its transaction.

    The access version is bumped, so that every commit made for a connection
    whose role predates the change re-decides it (the event below is best
    effort); once committed, every open connection re-decides its role. A
    channel-layer failure is logged (robust), never turned into an error of
    the change that was made.
    """
    Board.objects.filter(pk=board.pk).update(access_version=F("access_version") + 1)
    transaction.on_commit(lambda: broadcast.publish_board(board), robust=True)


def member_set(*, board, user, role):
    """Make `user` a member with `role`, or change the role of a member."""
    with transaction.atomic():
        membership, _ = Membership.objects.update_or_create(
            board=board, user=user, defaults={"role": role}
        )
        board_access_changed(board=board)
    return membership


def member_remove(*, membership):
    with transaction.atomic():
        membership.delete()
        board_access_changed(board=membership.board)


def share_link_create(*, board, role, created_by=None, label=""):
    """Make a share link; returns it with its key, which is shown only now."""
    key = ShareLink.new_key()
    link = ShareLink(board=board, role=role, created_by=created_by, label=label)
    link.set_key(key)
    link.full_clean()
    link.save()
    return link, key


def share_link_revoke(*, link):
    if link.revoked_at is None:
        link.revoked_at = timezone.now()
        with transaction.atomic():
            link.save(update_fields=["revoked_at"])
            board_access_changed(board=link.board)
