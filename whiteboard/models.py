"""Boards, their elements and the append-only log of ops that changed them.

An element's stored `body` is its JSON without `v`: the snapshot appends `v` from
its own column, so serving a board never decodes and re-encodes every element.
"""

import hashlib
import secrets

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models, transaction
from django.db.models import Q
from django.db.models.signals import post_delete
from django.dispatch import receiver

SLUG_VALIDATOR = RegexValidator(
    r"^[a-z0-9-]{1,64}\Z", "Use 1 to 64 lowercase letters, digits or hyphens."
)


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    EDITOR = "editor", "Editor"
    VIEWER = "viewer", "Viewer"


# Higher is more: the best of several grants is the one that applies.
ROLE_RANK = {Role.VIEWER: 1, Role.EDITOR: 2, Role.OWNER: 3}
GRANTABLE_ROLES = [(Role.EDITOR, "Editor"), (Role.VIEWER, "Viewer")]


def random_slug():
    """An unguessable board address: 20 characters, 100 bits of randomness."""
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    return "".join(secrets.choice(alphabet) for _ in range(20))


def new_epoch():
    """A board history's name (PROTOCOL.md, "Board epoch"): 16 random characters."""
    return secrets.token_urlsafe(12)


class Board(models.Model):
    slug = models.CharField(max_length=64, unique=True, validators=[SLUG_VALIDATOR])
    title = models.CharField(max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_boards",
    )
    is_public = models.BooleanField(
        "public", default=True, help_text="Anyone with the link may open it."
    )
    visitor_role = models.CharField(
        max_length=10,
        choices=GRANTABLE_ROLES,
        default=Role.EDITOR,
        help_text="What people who are not members may do on a public board.",
    )
    locked = models.BooleanField(
        default=False, help_text="Nobody, the owner included, may change it."
    )
    seq = models.BigIntegerField(default=0, editable=False)
    live_elements = models.IntegerField(default=0, editable=False)
    # UTF-8 bytes of the live elements' stored bodies: the storage quota's count.
    live_bytes = models.BigIntegerField(default=0, editable=False)
    # Bytes of the board's stored images (Asset.bytes summed): they count
    # against the same quota as live_bytes (whiteboard/assets.py).
    asset_bytes = models.BigIntegerField(default=0, editable=False)
    # Bumped by every change of who may do what (services.board_access_changed):
    # a commit re-decides the author's role when its connection's is older.
    access_version = models.PositiveIntegerField(default=0, editable=False)
    # Changes when the board's history is replaced (a backup restored, an
    # import over it): a client resuming with another epoch gets a snapshot.
    epoch = models.CharField(max_length=32, default=new_epoch, editable=False)
    # The first seq whose state can still be computed: ops up to it were
    # dropped by compaction (whiteboard/timeline.py), a checkpoint holds it.
    history_from = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-changed_at"]

    def __str__(self):
        return f"{self.title} ({self.slug})"


class MembershipQuerySet(models.QuerySet):
    def role_of(self, board, user):
        return (
            self.filter(board=board, user=user).values_list("role", flat=True).first()
        )


class Membership(models.Model):
    """A user's standing role on a board; how a private board admits its team."""

    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.EDITOR)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["board", "user"], name="membership_unique_user"
            )
        ]
        ordering = ["created_at"]

    def __str__(self):
        return f"{self.user} ({self.role})"


def share_key_digest(key):
    return hashlib.sha256(key.encode()).hexdigest()


class ShareLinkQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)

    def best_role(self, board, keys):
        """The best role that any of `keys` grants on `board`, or None."""
        digests = [share_key_digest(k) for k in keys if isinstance(k, str)]
        if not digests:
            return None
        roles = self.active().filter(board=board, digest__in=digests)
        return max(
            roles.values_list("role", flat=True), key=ROLE_RANK.get, default=None
        )


class ShareLink(models.Model):
    """A link that admits its holders with a role, until it is revoked.

    Only a digest of the key is stored: the full link is shown once, when it is
    made, and a database dump does not hand out access to every board.
    """

    board = models.ForeignKey(
        Board, on_delete=models.CASCADE, related_name="share_links"
    )
    digest = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(
        max_length=8, editable=False, help_text="The key's first characters."
    )
    role = models.CharField(max_length=10, choices=GRANTABLE_ROLES)
    label = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ShareLinkQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.role} link {self.hint}…"

    @property
    def active(self):
        return self.revoked_at is None

    @staticmethod
    def new_key():
        return secrets.token_urlsafe(24)

    def set_key(self, key):
        self.digest = share_key_digest(key)
        self.hint = key[:6]


def board_group(slug):
    """The channel-layer group of one board; slugs are already group-name safe."""
    return f"board.{slug}"


class ElementQuerySet(models.QuerySet):
    def live(self):
        # `deleted IN (false)`, not `deleted=False`: on SQLite Django writes the
        # latter as `NOT deleted`, which cannot use the (board, deleted, z)
        # index, so every page of a snapshot sorted the whole board.
        return self.filter(deleted__in=[False])


class Element(models.Model):
    """The current state of one element, or its tombstone after a delete."""

    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="elements")
    element_id = models.CharField(max_length=64)
    kind = models.CharField(max_length=16)
    # Stacking order: the seq of the first add, kept when undo brings it back.
    z = models.BigIntegerField()
    v = models.BigIntegerField()
    deleted = models.BooleanField(default=False)
    body = models.TextField()
    # JSON {field: seq} of fields changed by an update since the add; undo
    # reverts a field only while the undone op is still its last writer.
    field_v = models.TextField(default="{}")

    objects = ElementQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["board", "element_id"], name="element_unique_id_per_board"
            )
        ]
        indexes = [models.Index(fields=["board", "deleted", "z"], name="element_stack")]

    def __str__(self):
        return f"{self.kind} {self.element_id}"


class History(models.TextChoices):
    NONE = "", "not undoable"
    DONE = "done", "done"
    UNDONE = "undone", "undone"
    DROPPED = "dropped", "dropped"


class Op(models.Model):
    """One committed client request: one or more consecutive seqs, one cid.

    `entries` is the JSON array broadcast to clients, stored once and replayed
    verbatim. The history fields are what undo and redo need.
    """

    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="ops")
    seq = models.BigIntegerField()
    last_seq = models.BigIntegerField()
    cid = models.CharField(max_length=64)
    kind = models.CharField(max_length=16)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    by = models.CharField(max_length=150)
    # null for ops made outside a socket, as the protocol says.
    sid = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    # Whose history this op belongs to: "user:<id>", "session:<hash>", "conn:<sid>".
    actor = models.CharField(max_length=100)
    entries = models.TextField()
    undo = models.TextField(blank=True, default="")
    history = models.CharField(
        max_length=8, choices=History.choices, default=History.NONE, blank=True
    )
    # The seq of the op that last applied or reverted this history entry.
    applied_seq = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["board", "seq"], name="op_unique_seq"),
            models.UniqueConstraint(fields=["board", "cid"], name="op_unique_cid"),
            models.CheckConstraint(
                condition=Q(last_seq__gte=models.F("seq")), name="op_seq_range"
            ),
        ]
        indexes = [
            models.Index(fields=["board", "last_seq"], name="op_since"),
            models.Index(
                fields=["board", "actor", "history", "seq"], name="op_history"
            ),
        ]

    def __str__(self):
        return f"{self.kind} #{self.seq}"


class PresenceQuerySet(models.QuerySet):
    def on_board(self, board, *, fresh_after):
        return self.filter(board=board, seen_at__gte=fresh_after).order_by("id")


class Presence(models.Model):
    """One open connection on a board, shared by every server process.

    Each process refreshes `seen_at` of its rows, so rows left by a crashed
    process stop counting after a few heartbeats.
    """

    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="presence")
    sid = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=150)
    color = models.CharField(max_length=7)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    server = models.CharField(max_length=64)
    channel_name = models.CharField(max_length=200)
    connected_at = models.DateTimeField(auto_now_add=True)
    seen_at = models.DateTimeField()

    objects = PresenceQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "presence"

    def __str__(self):
        return f"{self.name} on {self.board_id}"


class Checkpoint(models.Model):
    """The board's elements right after op `seq`, so that the state at any seq is
    a checkpoint plus at most WHITEBOARD_CHECKPOINT_OPS ops (whiteboard/timeline.py).

    `state` is JSON: {"live": [[z, element], ...], "gone": [[z, id], ...]}, live
    elements in stacking order with their `v`, and the deleted ones' places
    (an undo brings an element back where it was).
    """

    board = models.ForeignKey(
        Board, on_delete=models.CASCADE, related_name="checkpoints"
    )
    seq = models.BigIntegerField()
    state = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["board", "seq"], name="checkpoint_seq")
        ]

    def __str__(self):
        return f"checkpoint of board {self.board_id} at {self.seq}"


class Thumbnail(models.Model):
    """A small PNG of the board as of `seq`, rendered in the background."""

    board = models.OneToOneField(
        Board, on_delete=models.CASCADE, primary_key=True, related_name="thumbnail"
    )
    seq = models.BigIntegerField()
    png = models.BinaryField()
    rendered_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"thumbnail of board {self.board_id} at {self.seq}"


def new_asset_key():
    """An asset's public id: 32 URL-safe characters, 192 bits of randomness."""
    return secrets.token_urlsafe(24)


def asset_upload_to(instance, filename):
    """Where an asset's file is stored: named by its key, never by the name the
    uploader's file had (`filename`, which is ignored)."""
    extension = ASSET_EXTENSIONS.get(instance.content_type, "")
    return f"assets/{instance.board_id}/{instance.key}{extension}"


# The types an asset may have (PROTOCOL.md, "Images"), with their file endings.
ASSET_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
}


class Asset(models.Model):
    """An image uploaded to a board (whiteboard/assets.py), re-encoded without its
    metadata and kept in Django's default storage (settings.STORAGES).

    `key` is the id the protocol's `image` elements name. `manage.py
    cleanassets` deletes the assets that nothing on their board names any more.
    """

    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="assets")
    key = models.CharField(
        max_length=64, unique=True, default=new_asset_key, editable=False
    )
    content_type = models.CharField(max_length=32)
    w = models.PositiveIntegerField()
    h = models.PositiveIntegerField()
    bytes = models.PositiveBigIntegerField()
    file = models.FileField(upload_to=asset_upload_to, max_length=200)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self):
        return f"{self.content_type} {self.key}"


@receiver(post_delete, sender=Asset)
def asset_file_delete(sender, instance, **kwargs):
    """A deleted asset's file goes too, once the deletion is committed (a board
    deleted with its assets, `cleanassets`, the admin)."""
    name, storage = instance.file.name, instance.file.storage
    if name:
        transaction.on_commit(lambda: storage.delete(name))
