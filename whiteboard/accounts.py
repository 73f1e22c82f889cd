"""Accounts at Django's usual URLs under /accounts/: log in, sign up, log out,
change password.

The views are Django's own (login rotates the session key, logout is POST only)
with two additions: every form that checks a password (this login, the admin's
login at /admin/login/, the password change) is rate limited per IP and per
username tried by one counter, and sign-up is rate limited per IP and can be
turned off with WHITEBOARD_SIGNUP_OPEN. Password reset is not routed: it needs outgoing
e-mail, which a self-hosted board usually has not; an admin sets a new password
instead (see README.md).
"""

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import login, views
from django.contrib.auth.forms import UserCreationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from . import ratelimit


def count_login(request: HttpRequest, username: str) -> None:
    """Count one password check against WHITEBOARD_LOGIN_RATE; raise RateLimited.

    Every form that checks a password counts here, per IP and per username
    tried, so that no form is a way around another one's limit.
    """
    key = f"username:{username.strip().casefold()}"
    ratelimit.check(request, "login", keys=[key])


class LoginView(views.LoginView):
    """Django's login, but over WHITEBOARD_LOGIN_RATE (per IP or per username)
    it answers HTTP 429 without checking the password."""

    def post(self, request, *args, **kwargs):
        try:
            count_login(request, request.POST.get("username", ""))
        except ratelimit.RateLimited as exc:
            return self.refuse(exc)
        return super().post(request, *args, **kwargs)

    def refuse(self, exc):
        # An unbound form: validating the posted one would check the password.
        username = self.request.POST.get("username", "")
        form = self.get_form_class()(self.request, initial={"username": username})
        context = self.get_context_data(form=form, rate_limited=exc)
        response = self.render_to_response(context, status=exc.status)
        response["Retry-After"] = str(exc.retry_after)
        return response


def limited_login(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap another login view: its POSTs count as login attempts (429 when over).

    A limited attempt is refused before the password is checked.
    """

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method == "POST":
            try:
                count_login(request, request.POST.get("username", ""))
            except ratelimit.RateLimited as exc:
                return ratelimit.too_many(request, exc)
        return view(request, *args, **kwargs)

    return wrapped


class PasswordChangeView(views.PasswordChangeView):
    """Django's, but each try of the old password counts as a login attempt."""

    def post(self, request, *args, **kwargs):
        try:
            count_login(request, request.user.get_username())
        except ratelimit.RateLimited as exc:
            return ratelimit.too_many(request, exc)
        return super().post(request, *args, **kwargs)


# The admin's login form, at /admin/login/ (config/urls.py routes it before
# the rest of the admin).
admin_login = limited_login(admin.site.login)


def _next_url(request):
    target = request.POST.get("next") or request.GET.get("next") or ""
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if safe else settings.LOGIN_REDIRECT_URL


@sensitive_post_parameters("password1", "password2")
@csrf_protect
@ratelimit.limit("signup")
def signup(request):
    """Create an account and log in with it; a 404 page when sign-up is off."""
    if not settings.WHITEBOARD_SIGNUP_OPEN:
        return render(request, "registration/signup_closed.html", status=404)
    form = UserCreationForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        user = form.save()
        login(request, user)
        return redirect(_next_url(request))
    next_url = request.POST.get("next") or request.GET.get("next", "")
    return render(request, "registration/signup.html", {"form": form, "next": next_url})


urlpatterns = [
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("signup/", signup, name="signup"),
    path(
        "password_change/",
        PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "password_change/done/",
        views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
]
