"""Is a logged-in socket's browser session still the one it was opened with?

A logout, a password change or a deactivated account ends a user's sockets at
once through a per-user event (broadcast.end_user_sessions); this check, run
every heartbeat, catches the sockets whose event was lost: the session was
flushed, it now belongs to nobody or to another user, its auth hash no longer
matches the password, or the account is inactive or gone.
"""

from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils.crypto import constant_time_compare

SESSION_KEY = "_auth_user_id"
HASH_SESSION_KEY = "_auth_user_hash"


def ended_sessions(*, pairs):
    """Of these (session_key, user_id) pairs, the session keys no longer valid."""
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    user_ids = {user_id for _, user_id in pairs}
    users = get_user_model()._default_manager.in_bulk(user_ids)
    ended = set()
    for session_key, user_id in pairs:
        data = store_class(session_key=session_key).load()
        user = users.get(user_id)
        if not still_logged_in(data, user):
            ended.add(session_key)
    return ended


def still_logged_in(data, user):
    if user is None or not user.is_active:
        return False
    if str(data.get(SESSION_KEY)) != str(user.pk):
        return False
    stored = data.get(HASH_SESSION_KEY) or ""
    return constant_time_compare(stored, user.get_session_auth_hash())
