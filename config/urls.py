from django.contrib import admin
from django.urls import include, path

from whiteboard import accounts

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include(accounts.urlpatterns)),
    path("", include("whiteboard.urls")),
]
