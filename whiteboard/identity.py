"""Who is behind a connection: display name, colour and undo-history key.

History belongs to the account, else to the guest session, else to the single
connection. Session keys are hashed before they are stored anywhere: a session
key is a bearer secret.

A guest's display name always ends in GUEST_MARK, " (guest)": the made-up
names here and the names guests choose (stored in the session already marked)
alike, so the people list, the cursors and every op's `by` tell a guest from
an account, and no guest can pass for one.
"""

import hashlib
import secrets
from dataclasses import dataclass

ADJECTIVES = (
    "Amber Brave Bright Calm Clever Cosmic Daring Eager Gentle Happy Jolly Kind "
    "Lively Lucky Merry Nimble Quick Quiet Sunny Swift Tidy Witty Zesty Bold"
).split()
ANIMALS = (
    "Badger Beaver Crane Dolphin Falcon Fox Gecko Heron Ibis Koala Lynx Marten "
    "Otter Owl Panda Puffin Quokka Raven Seal Stoat Tapir Walrus Wombat Yak"
).split()
COLORS = (
    "#e53935 #d81b60 #8e24aa #5e35b1 #3949ab #1e88e5 #039be5 #00897b "
    "#43a047 #7cb342 #f4511e #6d4c41"
).split()


@dataclass(frozen=True)
class Author:
    """Who made an op: stamped on it (`sid`, `by`) and owning its undo history."""

    sid: str | None
    by: str
    actor: str
    user_id: int | None = None
    role: str = "editor"
    # Moderators (staff in the admin) may change a locked board.
    moderator: bool = False


def new_sid():
    return secrets.token_urlsafe(9)


def _digest(text):
    return hashlib.sha256(text.encode()).hexdigest()


GUEST_MARK = " (guest)"


def mark_guest(name: str) -> str:
    """The display name of a guest who chose `name`."""
    return f"{name}{GUEST_MARK}"


def unmark_guest(display: str) -> str:
    """The name a guest chose, from its display name (for the rename form)."""
    return display.removesuffix(GUEST_MARK)


def guest_name(seed):
    """A made-up guest name, such as "Amber Fox (guest)", the same for one seed."""
    digest = int(_digest(seed)[:8], 16)
    adjective = ADJECTIVES[digest % len(ADJECTIVES)]
    return mark_guest(f"{adjective} {ANIMALS[digest // 97 % len(ANIMALS)]}")


def color_for(seed):
    return COLORS[int(_digest(seed)[:8], 16) % len(COLORS)]


def actor_key(*, user_id=None, session_key=None, sid=None):
    if user_id is not None:
        return f"user:{user_id}"
    if session_key:
        return f"session:{_digest(session_key)[:32]}"
    return f"conn:{sid}"


def user_display_name(user):
    return (user.get_full_name() or user.get_username())[:150]
