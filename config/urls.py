from django.contrib import admin
from django.urls import include, path

from whiteboard import accounts

urlpatterns = [
    # The admin's login, under the same login limit as /accounts/login/: it
    # comes before the admin's own URLs, which would answer first otherwise.
    path("admin/login/", accounts.admin_login),
    path("admin/", admin.site.urls),
    path("accounts/", include(accounts.urlpatterns)),
    path("", include("whiteboard.urls")),
]
