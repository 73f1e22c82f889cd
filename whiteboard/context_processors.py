"""What every page's header needs to show the account links."""

from django.conf import settings


def accounts(request):
    """`signup_open`, and `login_next`: where "Log in" returns to afterwards.

    `login_next` is the path without its query string, so that a share key in
    a board's address never travels on into the login page's URL.
    """
    path = request.path
    return {
        "signup_open": settings.WHITEBOARD_SIGNUP_OPEN,
        "login_next": "" if path.startswith("/accounts/") else path,
    }
