"""End an account's open sockets when its login stops being valid.

A logout, a changed password hash (the user's own change, an admin's, or
`changepassword`), an account made inactive and a deleted account each publish
`broadcast.end_user_sessions`, which closes that user's sockets on every
process. Inside a transaction (the admin's) the event waits for the commit, so
a rolled-back change ends nothing. A channel-layer failure is logged and never
fails the request: the socket's heartbeat re-check catches what the event missed.
"""

import logging
from typing import Any

from django.contrib.auth import get_user_model, user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save

from . import broadcast

logger = logging.getLogger(__name__)

LOGGED_OUT = "You logged out."
PASSWORD_CHANGED = "Your password was changed: log in again."
DEACTIVATED = "Your account was deactivated."
DELETED = "Your account was deleted."

# Set on the instance by pre_save, read by post_save: what the row held before.
_BEFORE = "_whiteboard_before_save"


def end_sessions_later(user_id: int, message: str) -> None:
    """Publish the event once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: _publish(user_id, message), robust=True)


def _publish(user_id: int, message: str) -> None:
    try:
        broadcast.end_user_sessions(user_id=user_id, message=message)
    except Exception:
        logger.exception("could not end the sockets of user %s", user_id)


def on_logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None and user.pk is not None:
        end_sessions_later(user.pk, LOGGED_OUT)


def remember_before_save(sender: Any, instance: Any, **kwargs: Any) -> None:
    """Read the stored password hash and active flag, when this save may change them."""
    fields = kwargs.get("update_fields")
    if instance.pk is None or kwargs.get("raw"):
        return
    if fields is not None and not {"password", "is_active"} & set(fields):
        return
    stored = (
        sender._default_manager.filter(pk=instance.pk)
        .values("password", "is_active")
        .first()
    )
    setattr(instance, _BEFORE, stored)


def end_sessions_after_save(sender: Any, instance: Any, **kwargs: Any) -> None:
    before = instance.__dict__.pop(_BEFORE, None)
    if before is None:
        return
    if before["is_active"] and not instance.is_active:
        end_sessions_later(instance.pk, DEACTIVATED)
    elif before["password"] != instance.password:
        end_sessions_later(instance.pk, PASSWORD_CHANGED)


def end_sessions_after_delete(sender: Any, instance: Any, **kwargs: Any) -> None:
    end_sessions_later(instance.pk, DELETED)


def connect() -> None:
    """Wire the receivers (from WhiteboardConfig.ready)."""
    user_model = get_user_model()
    user_logged_out.connect(on_logged_out, dispatch_uid="whiteboard.logged_out")
    pre_save.connect(
        remember_before_save, sender=user_model, dispatch_uid="whiteboard.user_pre"
    )
    post_save.connect(
        end_sessions_after_save, sender=user_model, dispatch_uid="whiteboard.user_post"
    )
    post_delete.connect(
        end_sessions_after_delete,
        sender=user_model,
        dispatch_uid="whiteboard.user_delete",
    )
