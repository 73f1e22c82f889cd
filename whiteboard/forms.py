"""Every form of the site's pages: what a user may type, checked in one place.

Text fields refuse NUL and other control characters with a message saying so
(PostgreSQL cannot store a NUL, and a line break or a bidi override has no place
in a title or a name) and are bounded in length.
"""

import re
import unicodedata

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Value
from django.db.models.functions import Concat

from . import identity
from .models import GRANTABLE_ROLES, Board, Role

TITLE_MAX = 200
GUEST_NAME_MAX = 40
LINK_MAX = 2000
# Bidi embeddings, overrides and isolates: they reorder what others read.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# A board link (".../b/<slug>/") or a bare slug, as typed into "Open a board".
LINK_RE = re.compile(r"(?:/b/)?([a-z0-9-]{1,64})/?$")


def refuse_control_characters(value: str) -> None:
    """Refuse NUL, other control characters, lone surrogates and bidi controls."""
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cs") or char in BIDI_CONTROLS:
            raise forms.ValidationError(
                "Control characters (such as NUL, a tab or a line break) are not "
                f"allowed here; remove U+{ord(char):04X}.",
                code="control_character",
            )


class LineField(forms.CharField):
    """One line of text: outer spaces stripped, inner runs of spaces made one,
    invisible format characters (a BOM, zero-width spaces) dropped."""

    default_validators = [refuse_control_characters]
    # Joiners shape emoji and some scripts' letters.
    keep = frozenset("\u200c\u200d") | BIDI_CONTROLS

    def to_python(self, value):
        text = "".join(
            char
            for char in super().to_python(value)
            if unicodedata.category(char) != "Cf" or char in self.keep
        )
        return re.sub(" {2,}", " ", text).strip()


class NameField(LineField):
    """A display name: the joiners go too, so that two names that look the
    same are the same (to compare with the registered users' names)."""

    keep = BIDI_CONTROLS


def _length(label: str, maximum: int) -> dict[str, str]:
    message = f"{label} is 1 to {maximum} characters."
    return {"max_length": message, "required": message}


class BoardCreateForm(forms.Form):
    """The home page's "New board"."""

    title = LineField(
        max_length=TITLE_MAX,
        required=False,
        error_messages=_length("A title", TITLE_MAX),
    )
    visibility = forms.ChoiceField(
        choices=[("public", "Public"), ("private", "Private")], required=False
    )


class BoardOpenForm(forms.Form):
    """The home page's "Open a board": a pasted link or a board's name."""

    board = LineField(max_length=LINK_MAX, error_messages=_length("A link", LINK_MAX))

    def clean_board(self):
        text = self.cleaned_data["board"]
        address = text.split("#")[0].partition("?")[0]
        if not LINK_RE.search(address.lower()):
            raise forms.ValidationError("That is not a board link or a board name.")
        return text


class GuestNameForm(forms.Form):
    """The name a guest shows others; never one of a registered user."""

    name = NameField(
        max_length=GUEST_NAME_MAX,
        error_messages=_length("A name", GUEST_NAME_MAX),
    )

    def clean_name(self):
        name = self.cleaned_data["name"]
        if not name:
            raise forms.ValidationError(f"A name is 1 to {GUEST_NAME_MAX} characters.")
        if registered_name_exists(name):
            raise forms.ValidationError(
                f"{name!r} is the name of a registered user: choose another, "
                "or log in if it is yours."
            )
        return name

    def display_name(self) -> str:
        return identity.mark_guest(self.cleaned_data["name"])


def registered_name_exists(name: str) -> bool:
    """Whether an account shows `name` (its username or full name, any case)."""
    users = get_user_model().objects
    if users.filter(**{f"{get_user_model().USERNAME_FIELD}__iexact": name}).exists():
        return True
    full = Concat("first_name", Value(" "), "last_name")
    return users.annotate(full=full).filter(full__iexact=name).exists()


class BoardSettingsForm(forms.ModelForm):
    title = LineField(
        max_length=TITLE_MAX, error_messages=_length("A title", TITLE_MAX)
    )

    class Meta:
        model = Board
        fields = ["title", "is_public", "visitor_role", "locked"]
        labels = {
            "is_public": "Public: anyone with the link may open it",
            "visitor_role": "People who open the link without being members may",
            "locked": "Locked: nobody can draw, owners included",
        }
        widgets = {"visitor_role": forms.RadioSelect}


class MemberForm(forms.Form):
    """Add a member by username, or change the role of one."""

    username = LineField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.EDITOR)

    def __init__(self, *args, board, **kwargs):
        super().__init__(*args, **kwargs)
        self.board = board

    def clean_username(self):
        username = self.cleaned_data["username"]
        User = get_user_model()
        user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
        if user is None or not user.is_active:
            raise forms.ValidationError(f"There is no user called {username!r}.")
        if user.pk == self.board.owner_id:
            raise forms.ValidationError(f"{username} owns this board already.")
        self.cleaned_data["user"] = user
        return username


class MemberRoleForm(forms.Form):
    """A member's new role, or "remove"."""

    role = forms.ChoiceField(
        choices=[*Role.choices, ("remove", "Remove")],
        error_messages={"invalid_choice": "Choose owner, editor, viewer or remove."},
    )


class ShareLinkForm(forms.Form):
    role = forms.ChoiceField(choices=GRANTABLE_ROLES, initial=Role.VIEWER)
    label = LineField(
        max_length=100, required=False, help_text="Who the link is for (optional)."
    )


class BoardDeleteForm(forms.Form):
    """Deleting a board: its address typed again, to confirm."""

    confirm = LineField(max_length=64)

    def __init__(self, *args, board, **kwargs):
        super().__init__(*args, **kwargs)
        self.board = board

    def clean_confirm(self):
        if self.cleaned_data["confirm"] != self.board.slug:
            raise forms.ValidationError(
                "Type the board's address to confirm deleting it."
            )
        return self.cleaned_data["confirm"]
