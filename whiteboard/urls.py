from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

from . import board_settings, views

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
