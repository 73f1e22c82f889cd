"""Forms of the board settings page."""

from django import forms
from django.contrib.auth import get_user_model

from .models import GRANTABLE_ROLES, Board, Role


class BoardSettingsForm(forms.ModelForm):
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

    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.EDITOR)

    def __init__(self, *args, board, **kwargs):
        super().__init__(*args, **kwargs)
        self.board = board

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        User = get_user_model()
        user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
        if user is None or not user.is_active:
            raise forms.ValidationError(f"There is no user called {username!r}.")
        if user.pk == self.board.owner_id:
            raise forms.ValidationError(f"{username} owns this board already.")
        self.cleaned_data["user"] = user
        return username


class ShareLinkForm(forms.Form):
    role = forms.ChoiceField(choices=GRANTABLE_ROLES, initial=Role.VIEWER)
    label = forms.CharField(
        max_length=100, required=False, help_text="Who the link is for (optional)."
    )
