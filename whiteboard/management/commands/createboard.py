from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from whiteboard import services
from whiteboard.management.users import user_named
from whiteboard.models import Board


class Command(BaseCommand):
    help = (
        "Create a board at /b/SLUG/ (public unless --private). Without a SLUG an "
        "unguessable one is made up."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", nargs="?", help="1 to 64 of a-z, 0-9 and -")
        parser.add_argument("--title", default="", help="defaults to the slug")
        parser.add_argument("--private", action="store_true", help="members only")
        parser.add_argument("--owner", metavar="USERNAME", help="an existing user")
        parser.add_argument(
            "--exist-ok", action="store_true", help="do nothing if it already exists"
        )

    def handle(self, *args, slug, title, private, owner, exist_ok, **options):
        if exist_ok and slug and Board.objects.filter(slug=slug).exists():
            self.stdout.write(f"Board {slug!r} already exists.")
            return
        owner_user = user_named(owner)
        try:
            board = services.board_create(
                slug=slug, title=title, owner=owner_user, is_public=not private
            )
        except ValidationError as exc:
            messages = "; ".join(
                f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()
            )
            raise CommandError(messages) from exc
        visibility = "private" if private else "public"
        self.stdout.write(f"Created {visibility} board {board.slug!r} ({board.title}).")
