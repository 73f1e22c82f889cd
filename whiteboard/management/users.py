"""What the management commands share."""

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError


def user_named(username: str | None):
    """The user of `--owner USERNAME`, None without one; CommandError if there
    is no such user."""
    if not username:
        return None
    User = get_user_model()
    try:
        return User.objects.get_by_natural_key(username)
    except User.DoesNotExist as exc:
        raise CommandError(f"There is no user {username!r}.") from exc
