from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import Count, Q
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from . import access, admin_status, oplog, services, thumbnail_views
from .models import Asset, Board, Membership, Op, Presence, ShareLink
from .protocol.messages import OP_TYPES

BOARD_SETTINGS = {"title", "owner", "is_public", "visitor_role", "locked"}
# Shown on a board's change page in a fieldset of their own, under its settings.
ACTIVITY_FIELDS = ["live_connections", "activity", "op_log"]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


class RevokeInsteadOfDelete(BaseInlineFormSet):
    def delete_existing(self, obj, commit=True):
        # Kept as a record of who had access; the service tells open sockets.
        if commit:
            services.share_link_revoke(link=obj)


class ShareLinkInline(admin.TabularInline):
    """Links are made on the board's settings page, where the key is shown once;
    here they can be revoked (ticking "delete" revokes one)."""

    model = ShareLink
    formset = RevokeInsteadOfDelete
    extra = 0
    fields = ["hint", "role", "label", "created_by", "created_at", "revoked_at"]
    readonly_fields = fields
    verbose_name_plural = "share links (tick delete to revoke one)"

    def get_queryset(self, request):
        return super().get_queryset(request).active()

    def has_add_permission(self, request, obj=None):
        return False


class PresenceInline(admin.TabularInline):
    """Who is on the board right now, with the role each connection has."""

    model = Presence
    extra = 0
    fields = ["name", "user", "role", "connected_at", "seen_at"]
    readonly_fields = fields
    verbose_name_plural = "on the board now"
    can_delete = False

    def get_queryset(self, request):
        heartbeat = services.current_limits().heartbeat_seconds
        fresh = services.presence_cutoff(heartbeat)
        return super().get_queryset(request).filter(seen_at__gte=fresh)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Board)
class BoardAdmin(admin.ModelAdmin):
    list_display = [
        "title",
        "slug",
        "owner",
        "is_public",
        "locked",
        "element_count",
        "changed_at",
        "thumbnail_image",
    ]
    list_filter = ["is_public", "locked", "visitor_role", "changed_at"]
    search_fields = ["title", "slug", "owner__username", "owner__email"]
    readonly_fields = [
        "who_can_open",
        "seq",
        "live_elements",
        "live_bytes",
        "created_at",
        "changed_at",
        *ACTIVITY_FIELDS,
    ]
    autocomplete_fields = ["owner"]
    inlines = [MembershipInline, ShareLinkInline, PresenceInline]
    # Each action changes boards: staff who may only view them do not get them.
    actions = [
        "lock_boards",
        "unlock_boards",
        "clear_boards",
        "disconnect_everyone",
    ]

    def get_queryset(self, request):
        live = Count("elements", filter=Q(elements__deleted=False))
        return super().get_queryset(request).annotate(element_count=live)

    @admin.display(description="elements", ordering="element_count")
    def element_count(self, board):
        return board.element_count

    @admin.display(description="thumbnail")
    def thumbnail_image(self, board: Board) -> str:
        url = reverse("admin:whiteboard_board_thumbnail", args=[board.pk])
        return format_html(
            '<img src="{}" alt="" width="64" height="40" loading="lazy">', url
        )

    def thumbnail_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """A board's thumbnail (thumbnail_views.py) for staff who may view
        boards: the board page's check would refuse them a private board."""
        found = Board.objects.filter(pk=object_id).values_list("pk", flat=True)
        if not found or not self.has_view_permission(request):
            raise Http404("No such board.")
        return thumbnail_views.thumbnail_response(request, object_id)

    @admin.display(description="who can open it")
    def who_can_open(self, board):
        """Each account's effective role, as the board page and socket decide it."""
        if board.pk is None:
            return "-"
        users = [board.owner] if board.owner else []
        users += [m.user for m in board.members.select_related("user")]
        lines = [(u.get_username(), access.board_role(board, u)) for u in users]
        if board.is_public:
            lines.append(("anyone else with the link", board.visitor_role))
        links = board.share_links.active().count()
        if links:
            lines.append((f"holders of {links} share link(s)", "see below"))
        return format_html_join(mark_safe("<br>"), "{}: {}", lines or [("nobody", "-")])

    @admin.display(description="live connections")
    def live_connections(self, board: Board) -> int | str:
        """Open sockets on every server process (the presence rows listed below)."""
        return admin_status.live_connections(board) if board.pk is not None else "-"

    @admin.display(description="ops per minute, last hour")
    def activity(self, board: Board) -> str:
        """Ops per minute over the last hour, as a chart read from the ops table."""
        if board.pk is None:
            return "-"
        return admin_status.board_activity(board, timezone.now())

    @admin.display(description="op log")
    def op_log(self, board: Board) -> str:
        """A link to the board's ops in the op log, and how many seqs it has."""
        return oplog.board_oplog_link(board) if board.pk is not None else "-"

    def get_fieldsets(self, request: HttpRequest, obj: Board | None = None) -> list:
        """The activity fields apart from the settings, and only once the board
        exists: a board being added has none."""
        fields = self.get_fields(request, obj)
        main = [name for name in fields if name not in ACTIVITY_FIELDS]
        fieldsets = [(None, {"fields": main})]
        if obj is not None:
            shown = [
                name
                for name in ACTIVITY_FIELDS
                if name != "op_log" or can_view_op_log(self.admin_site, request)
            ]
            fieldsets.append(("Activity", {"fields": shown}))
        return fieldsets

    def get_urls(self) -> list[URLPattern]:
        """The Server status page. It sits among the boards' URLs because the
        admin is Django's default site, which takes no views of its own; it asks
        for staff only (admin_view), as the admin index does, and no permission
        on boards."""
        view = self.admin_site.admin_view(self.server_status_view)
        status = path("server-status/", view, name="server_status")
        thumbnail = path(
            "<int:object_id>/thumbnail.png",
            self.admin_site.admin_view(self.thumbnail_view, cacheable=True),
            name="whiteboard_board_thumbnail",
        )
        return [status, thumbnail, *super().get_urls()]

    def server_status_view(self, request: HttpRequest) -> TemplateResponse:
        """What metrics.snapshot() and the database say about the service now."""
        context = {
            **self.admin_site.each_context(request),
            "title": "Server status",
            "status": admin_status.server_status(timezone.now()),
        }
        return TemplateResponse(request, "admin/server_status.html", context)

    def get_readonly_fields(self, request, obj=None):
        # A board's slug is its address and its group: fixed once created.
        fields = super().get_readonly_fields(request, obj)
        return [*fields, "slug"] if obj is not None else fields

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            return
        # Only the edited fields: seq and live_elements may have moved on since
        # the form was loaded, and writing them back would rewind the board.
        changed = [name for name in form.changed_data if name in BOARD_SETTINGS]
        services.board_update_settings(board=obj, fields=changed)

    def save_related(self, request, form, formsets, change):
        """Members or links changed: open sockets re-check their access."""
        super().save_related(request, form, formsets, change)
        if change and any(formset.has_changed() for formset in formsets):
            services.board_access_changed(board=form.instance)

    # Deleting, from the change form or the "delete selected" action (which
    # asks for confirmation and then calls delete_queryset), closes the
    # boards' open connections with 4404.
    def delete_model(self, request, obj):
        services.board_delete(board=obj)

    def delete_queryset(self, request, queryset):
        for board in queryset:
            services.board_delete(board=board)

    def get_deleted_objects(self, objs, request):
        """A board's ops go with it: that nobody may delete an op on its own
        (OpAdmin) does not stop staff who may delete the board."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(
            objs, request
        )
        perms_needed.discard(Op._meta.verbose_name)
        return deleted, counts, perms_needed, protected

    @admin.action(
        description="Lock selected boards (read-only for everyone)",
        permissions=["change"],
    )
    def lock_boards(self, request, queryset):
        self._set_locked(request, queryset, True)

    @admin.action(description="Unlock selected boards", permissions=["change"])
    def unlock_boards(self, request, queryset):
        self._set_locked(request, queryset, False)

    def _set_locked(self, request, queryset, locked):
        for board in queryset:
            services.board_set_locked(board=board, locked=locked)
        state = "locked" if locked else "unlocked"
        self.message_user(request, f"{queryset.count()} board(s) {state}.")

    @admin.action(
        description="Clear selected boards (undoable by no one)", permissions=["change"]
    )
    def clear_boards(self, request, queryset):
        limits = services.current_limits()
        for board in queryset:
            services.board_clear(board=board, user=request.user, limits=limits)
        self.message_user(
            request, f"{queryset.count()} board(s) cleared.", level=messages.SUCCESS
        )

    @admin.action(
        description="Disconnect everyone from selected boards", permissions=["change"]
    )
    def disconnect_everyone(self, request, queryset):
        for board in queryset:
            services.board_disconnect_all(board=board)
        self.message_user(
            request,
            f"Everyone on {queryset.count()} board(s) was disconnected; "
            "they can reload the page to join again unless you lock the board "
            "or take their access away.",
        )


@admin.register(Presence)
class PresenceAdmin(admin.ModelAdmin):
    list_display = ["name", "board", "role", "user", "connected_at", "seen_at"]
    list_filter = ["role"]
    search_fields = ["name", "board__slug"]
    readonly_fields = [f.name for f in Presence._meta.fields]

    def has_add_permission(self, request):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """A list to look at: rows are written by the app (ops, uploads), never
    added, changed or deleted here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# == uploads ========================================================================


@admin.register(Asset)
class AssetAdmin(ReadOnlyAdmin):
    """The images uploaded to boards (whiteboard/assets.py): what each board
    holds, who uploaded it, how large. Read-only: an image is named by
    elements and history, so it goes by `manage.py cleanassets`, or with its
    board, never from here; `cleanassets --dry-run` lists the unused ones."""

    list_display = ["key", "board", "content_type", "size", "bytes", "uploaded_by"]
    list_display += ["created_at", "view_link"]
    list_filter = ["content_type", "created_at"]
    search_fields = ["key", "board__slug", "board__title", "uploaded_by__username"]
    list_select_related = ["board", "uploaded_by"]
    readonly_fields = [f.name for f in Asset._meta.fields] + ["view_link"]
    date_hierarchy = "created_at"

    @admin.display(description="pixels")
    def size(self, asset):
        return f"{asset.w} × {asset.h}"

    @admin.display(description="image")
    def view_link(self, asset):
        url = reverse("whiteboard:asset", args=[asset.board.slug, asset.key])
        return format_html('<a href="{}">open</a>', url)


# == the op log ======================================================================


def can_view_op_log(site: admin.AdminSite, request: HttpRequest) -> bool:
    """Whether the op log opens for this user (view permission on ops): pages
    that link to it show the link, and what it would show, only then."""
    return site.get_model_admin(Op).has_view_permission(request)


class KindFilter(admin.SimpleListFilter):
    """The op kinds of the protocol, listed without reading the table (a plain
    filter on `kind` would scan every op for its distinct values)."""

    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [(kind, kind) for kind in sorted(OP_TYPES)]

    def queryset(self, request, queryset):
        kind = self.value()
        return queryset.filter(kind=kind) if kind else queryset


@admin.register(Op)
class OpAdmin(ReadOnlyAdmin):
    """Each board's op log, newest first: who changed what, and when.

    Read-only for everyone, superusers included: the log is append-only, and
    undo, redo and replay read it. Staff need `whiteboard.view_op`.

    Kept fast on a log of hundreds of thousands of ops: newest first is the
    primary key's order (ids grow with commits; there is no index on
    created_at), no count of the whole table besides the paginator's, no date
    hierarchy or facets (each a pass over the table), and the kind filter's
    choices are the protocol's, not the table's distinct values.
    """

    list_display = ["time", "board_column", "seqs", "kind", "who", "elements"]
    list_filter = [
        KindFilter,
        ("created_at", admin.DateFieldListFilter),
        ("author", admin.RelatedOnlyFieldListFilter),
        ("board", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["board__slug", "board__title", "by", "cid"]
    search_help_text = "Board slug or title, author name, or cid."
    ordering = ["-pk"]
    list_select_related = ["board", "author"]
    list_per_page = 50
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = None
    fields = [
        "time",
        "board_column",
        "seqs",
        "kind",
        "who",
        "sid",
        "actor",
        "cid",
        "history",
        "applied_seq",
        "elements_all",
        "entries_pretty",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        # An op's undo data can be as large as the board (a clear's): unused here.
        return super().get_queryset(request).defer("undo")

    @admin.display(description="time", ordering="created_at")
    def time(self, op: Op) -> str:
        return oplog.op_time(op)

    @admin.display(description="board")
    def board_column(self, op: Op) -> str:
        return oplog.board_link(op.board)

    @admin.display(description="seq", ordering="seq")
    def seqs(self, op: Op) -> str:
        return oplog.seq_range(op)

    @admin.display(description="author")
    def who(self, op: Op) -> str:
        return oplog.author_label(op)

    @admin.display(description="elements touched")
    def elements(self, op: Op) -> str:
        return oplog.touched_html(op.entries)

    @admin.display(description="elements touched")
    def elements_all(self, op: Op) -> str:
        return oplog.touched_html(op.entries, shown=None)

    @admin.display(description="entries")
    def entries_pretty(self, op: Op) -> str:
        return oplog.pretty_entries(op.entries)


# == each account's recent activity ==================================================

User = get_user_model()


class UserWithActivityAdmin(UserAdmin):
    """Django's user admin, with the account's last ops on every board below its
    fields (for staff who may view the op log) and a link to all of them."""

    readonly_fields = [*UserAdmin.readonly_fields, "recent_activity"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None and can_view_op_log(self.admin_site, request):
            fieldsets.append(("Recent activity", {"fields": ["recent_activity"]}))
        return fieldsets

    @admin.display(description="recent activity")
    def recent_activity(self, user) -> str:
        return oplog.recent_activity_html(user)


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, UserWithActivityAdmin)
