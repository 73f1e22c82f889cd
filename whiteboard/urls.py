from django.urls import path

from . import views

app_name = "whiteboard"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("boards/new", views.board_new, name="board_new"),
    path("open", views.board_open, name="board_open"),
    path("b/<slug:slug>/", views.board_page, name="board"),
    path("me/name", views.guest_rename, name="guest_rename"),
]
