from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

from . import assets, board_settings, history_views, thumbnail_views, views
from .history_page import history_json, history_page

app_name = "whiteboard"

urlpatterns = [
    path("", views.home, name="home"),
    # Pages link the SVG icon; this answers browsers (and the admin) asking anyway.
    path(
        "favicon.ico",
        RedirectView.as_view(url=static("whiteboard/favicon.svg"), permanent=True),
    ),
    path("boards/new", views.board_new, name="board_new"),
    path("open", views.board_open, name="board_open"),
    path("b/<slug:slug>/", views.board_page, name="board"),
    path("b/<slug:slug>/state.json", history_views.state_json, name="state_json"),
    path("b/<slug:slug>/restore", history_views.restore, name="restore"),
    path("b/<slug:slug>/export.json", history_views.export_json, name="export_json"),
    path("b/<slug:slug>/history/", history_page, name="history"),
    path("b/<slug:slug>/history.json", history_json, name="history_json"),
    path("boards/import", history_views.import_board, name="board_import"),
    path(
        "b/<slug:slug>/thumbnail.png",
        thumbnail_views.board_thumbnail,
        name="board_thumbnail",
    ),
    path("b/<slug:slug>/assets/", assets.upload, name="asset_upload"),
    path("b/<slug:slug>/assets/<str:key>", assets.download, name="asset"),
    path("me/name", views.guest_rename, name="guest_rename"),
    path(
        "b/<slug:slug>/settings/", board_settings.board_settings, name="board_settings"
    ),
    path("b/<slug:slug>/members/", board_settings.member_add, name="member_add"),
    path(
        "b/<slug:slug>/members/<int:member_id>/",
        board_settings.member_change,
        name="member_change",
    ),
    path("b/<slug:slug>/links/", board_settings.link_create, name="link_create"),
    path(
        "b/<slug:slug>/links/<int:link_id>/revoke/",
        board_settings.link_revoke,
        name="link_revoke",
    ),
    path("b/<slug:slug>/delete/", board_settings.board_delete, name="board_delete"),
]
