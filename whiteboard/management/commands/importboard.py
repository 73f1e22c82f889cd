from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from whiteboard import portability, services
from whiteboard.management.users import user_named


class Command(BaseCommand):
    help = (
        "Create a board from a file of the export format (docs/history.md). "
        "With --slug of an existing board and --replace, that board's content "
        "and history are replaced and it gets a new epoch."
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--slug", help="default: a new unguessable one")
        parser.add_argument("--owner", metavar="USERNAME", help="an existing user")
        parser.add_argument("--public", action="store_true", help="default: private")
        parser.add_argument(
            "--replace", action="store_true", help="replace the board at --slug"
        )

    def handle(self, *args, file, slug, owner, public, replace, **options):
        owner_user = user_named(owner)
        try:
            data = Path(file).read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}.") from exc
        try:
            checked = portability.read(data, services.current_limits())
            board = portability.import_board(
                checked, owner=owner_user, slug=slug, replace=replace, is_public=public
            )
        except portability.ImportRefused as exc:
            raise CommandError(f"{file}: {exc.message} Nothing was imported.") from exc
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(
            f"Imported board {board.slug!r} ({board.title}): seq {board.seq}."
        )
