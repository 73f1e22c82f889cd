"""Accounts at Django's usual URLs under /accounts/: log in, sign up, log out,
change password.

The views are Django's own (login rotates the session key, logout is POST only)
with two additions: login attempts are rate limited per IP and per username
tried, and sign-up is rate limited per IP and can be turned off with
WHITEBOARD_SIGNUP_OPEN. Password reset is not routed: it needs outgoing
e-mail, which a self-hosted board usually has not; an admin sets a new password
instead (see README.md).
"""

from django.conf import settings
from django.contrib.auth import login, views
from django.contrib.auth.forms import UserCreationForm
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from . import ratelimit


class LoginView(views.LoginView):
    """Django's login, but over WHITEBOARD_LOGIN_RATE (per IP or per username)
    it answers HTTP 429 without checking the password."""

    def post(self, request, *args, **kwargs):
        username = request.POST.get("username", "").strip().casefold()
        try:
            ratelimit.check(request, "login", keys=[f"username:{username}"])
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
        views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "password_change/done/",
        views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
]
