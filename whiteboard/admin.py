from django.contrib import admin, messages
from django.db.models import Count, Q

from . import services
from .models import Board, Presence

BOARD_SETTINGS = {"title", "owner", "is_public", "visitor_role", "locked"}


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
    ]
    list_filter = ["is_public", "locked", "visitor_role", "changed_at"]
    search_fields = ["title", "slug", "owner__username", "owner__email"]
    readonly_fields = ["seq", "live_elements", "created_at", "changed_at"]
    autocomplete_fields = ["owner"]
    # Each action changes boards: staff who may only view them do not get them.
    actions = ["lock_boards", "unlock_boards", "clear_boards"]

    def get_queryset(self, request):
        live = Count("elements", filter=Q(elements__deleted=False))
        return super().get_queryset(request).annotate(element_count=live)

    @admin.display(description="elements", ordering="element_count")
    def element_count(self, board):
        return board.element_count

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


@admin.register(Presence)
class PresenceAdmin(admin.ModelAdmin):
    list_display = ["name", "board", "role", "user", "connected_at", "seen_at"]
    list_filter = ["role"]
    search_fields = ["name", "board__slug"]
    readonly_fields = [f.name for f in Presence._meta.fields]

    def has_add_permission(self, request):
        return False
